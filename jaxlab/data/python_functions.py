"""A Python function as code-summarization data: its docstring's first sentence (the
summary) and its code as the model reads it (the source). Training pairs and `jaxlab
predict` inputs are made by the same functions."""

import ast
import re
import textwrap


def first_sentence(docstring):
  """The docstring's first sentence: its first paragraph on one line, up to the first
  '. ' (or all of it); None where that is empty or not prose."""
  paragraph = ' '.join(docstring.strip().split('\n\n')[0].split())
  sentence = re.split(r'(?<=[.!?])\s', paragraph, maxsplit=1)[0].strip()
  if len(sentence) < 8 or not sentence[0].isalpha():
    return None
  return sentence


def without_docstring(node, source_lines):
  """The function's source with its docstring lines removed, dedented."""
  first, last = node.lineno - 1, node.end_lineno
  if node.decorator_list:
    first = node.decorator_list[0].lineno - 1
  doc = node.body[0]
  lines = source_lines[first:doc.lineno - 1] + source_lines[doc.end_lineno:last]
  indent = min((len(l) - len(l.lstrip()) for l in lines if l.strip()), default=0)
  return '\n'.join(l[indent:] for l in lines).strip()


def name_words(name):
  """An identifier's words, lower case: 'get_address_list' -> 'get address list',
  'isTypeTk' -> 'is type tk', 'HTTPResponse' -> 'http response'."""
  spaced = re.sub(r'([A-Z]+)([A-Z][a-z])', r'\1 \2', re.sub(r'([a-z0-9])([A-Z])', r'\1 \2', name))
  return ' '.join(word.lower() for word in re.split(r'[^A-Za-z0-9]+', spaced) if word)


def function_source(code):
  """What the model reads of a function's code: the words of its name, a newline, then the
  code without its docstring, its blanks and line breaks each folded into one space.

  Splitting identifiers into words is what code-summarization models do to their input
  (CodeSearchNet, code2seq): the summary often says the name's words ('get_size' ->
  'Return the size ...'), and split they are the same pieces the summaries are made of.
  Folding the blanks keeps indentation from taking a piece per space (the tokenizer keeps
  whitespace as written), so data.seq_len pieces hold more of the code. Code that does not
  parse is folded only. Training pairs and `jaxlab predict` inputs both pass through here
  (DatasetInfo.preprocessing['source_format'] = 'python_function')."""
  try:
    lines = textwrap.dedent(code).splitlines()
    tree = ast.parse('\n'.join(lines))
  except (SyntaxError, ValueError):
    return ' '.join(code.split())
  node = next((n for n in ast.walk(tree)
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
  if node is None:
    return ' '.join(code.split())
  if ast.get_docstring(node) is not None and len(node.body) > 1:
    code = without_docstring(node, lines)
  return f'{name_words(node.name)}\n{" ".join(code.split())}'


SOURCE_FORMATS = {'python_function': function_source}  # preprocessing['source_format'] -> f(text)
