"""Every command the docs and --help texts show is one jaxlab accepts.

Commands are extracted from README.md, tpu/README.md, docs/**/*.md, the experiments'
docstrings, tpu/slurm/jaxlab.sbatch, `jaxlab --help` and every `jaxlab COMMAND --help`, and
`tpu/launch.py --help` (and its usage examples). Each is checked by the real parsers:
`jaxlab ...` and `python -m jaxlab.main ...` by jaxlab.main's command parser and config
loader (tests/docs_commands_worker.py), `jaxlab bench` by the benchmark suite's parser,
`tpu/launch.py ...` by launch.py's parser, then the `jaxlab train` it would start; the
sbatch script is run with DRY_RUN=1 and the `jaxlab train` it prints is checked. Train
commands are then traced and lowered as --dry_run does, short of XLA's compile (slow).

Placeholders (DIR, NAME.py, gs://BUCKET, $TPU, ...) are replaced with real values from
PLACEHOLDERS; one that is not known there fails the test, as does a command that the
extraction recognises as jaxlab's but cannot check.
"""

import ast
import contextlib
import dataclasses
import importlib.util
import io
import itertools
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT, load_config

LAUNCH = ROOT / 'tpu' / 'launch.py'
SBATCH = ROOT / 'tpu' / 'slurm' / 'jaxlab.sbatch'
MARKDOWN = [ROOT / 'README.md', ROOT / 'tpu' / 'README.md',
            *sorted(p for p in (ROOT / 'docs').rglob('*.md') if '_build' not in p.parts)]
EXPERIMENTS = sorted(p.stem for p in (ROOT / 'experiments').glob('*.py'))

# Placeholder -> real value, applied to each word of a command in this order.
PLACEHOLDERS = (
    (r'experiments/sweeps/(NAME|Y)\.py', 'experiments/sweeps/digits_cnn.py'),
    (r'experiments/(NAME|X)\.py', 'experiments/digits_cnn.py'),
    (r'^--storage=URL$', '--storage=sqlite:///runs/example/study.db'),
    (r'^--trials=N$', '--trials=3'),
    (r'^--workers=K$', '--workers=2'),
    (r'^--only=NAME$', '--only=seed_mlp'),
    (r':ARG$', ':smoke'),
    (r'^--config\.KEY=VALUE$', '--config.seed=1'),
    (r'^--config=\.\.\.$', '--config=experiments/digits_cnn.py'),
    (r'^--workdir=\.\.\.$', '--workdir=runs/example'),
    (r'^--config\.data\.path=IMAGE_DIR$', '--config.data.path=tests/fixtures/your_files/images'),
    (r'^--config\.data\.path=TABLE\.csv$', '--config.data.path=tests/fixtures/your_files/houses.csv'),
    (r'^--config\.data\.label_column=COLUMN$', '--config.data.label_column=price'),
    (r'^--config\.data\.label_column=CLASS_COLUMN$', '--config.data.label_column=city'),
    (r'^--source=HF_DIR$', '--source=checkpoints/hf_llama'),
    (r'^--source=HF_(VIT|LLAMA)_DIR$', '--source=checkpoints/hf_model'),
    # What `jaxlab import` writes (its config and tokenizer; no weights, as a dry run needs
    # none), from tiny checkpoints: tests/fixtures/imported/README.md.
    (r'\bVIT_DIR\b', 'tests/fixtures/imported/vit'),
    (r'\bLLAMA_DIR\b', 'tests/fixtures/imported/llama'),
    (r'^--config\.data\.path=TEXT_DIR$', '--config.data.path=tests/fixtures/your_files/texts'),
    (r'^--config\.data\.path=COCO_DIR$', '--config.data.path=tests/fixtures/your_files/boxes'),
    (r'^--config\.data\.path=MANIFEST_DIR$', '--config.data.path=tests/fixtures/your_files/speech'),
    (r'^--config\.data\.path=PAIRS\.tsv$', '--config.data.path=tests/fixtures/your_files/pairs.tsv'),
    (r'\bNEW_DIR\b', 'runs/imported'),
    (r'\bDIR\b', 'runs/example'),
    (r'\bSTEP\b', '88'),
    (r'^--prompt=TEXT$', '--prompt=The for statement'),
    (r'^IMAGE$', 'digit.png'),
    (r'^FILE$', 'digit.png'),
    (r'\bFILE\.json$', 'results.json'),
    (r'\b(YOUR_)?BUCKET\b', 'my-bucket'),
)
# Shell variables the docs use without defining them (a doc's own NAME="..." lines
# define the others, e.g. tpu/README.md's TPU).
ENVIRONMENT = {'HOME': '/home/user'}
LEFTOVER_PLACEHOLDER = re.compile(r'\$\{?\w|\.\.\.|<\w+>|\b[A-Z][A-Z0-9_]*[A-Z]\b|=~')
# Text that names a jaxlab command: a snippet holding it must yield a checked command.
LOOKS_LIKE_A_COMMAND = re.compile(
    r'\bjaxlab (train|eval|predict|sample|export|import|bench)\b|-m jaxlab\.main|-m benchmarks\.run|'
    r'launch\.py (create|install|run|logs|stop|copy|delete)\b|jaxlab\.sbatch --')
# Flags that say how processes join, not what is trained: left out of the dry run, which
# runs in one process.
MULTIPROCESS_FLAGS = ('--jax_distributed', '--coordinator_address', '--num_processes',
                      '--process_id', '--distributed_timeout')
OPERATORS = {'&&', '||', ';', '|', '&'}


@dataclasses.dataclass(frozen=True)
class Snippet:
  """Shell text from a doc: a full command line (`complete`) or a mention in prose."""
  where: str
  text: str
  complete: bool
  output: str | None = None  # what the doc shows it printing, after a `$ ` prompt
  variables: tuple = ()  # (NAME, value) defined by the doc


@dataclasses.dataclass(frozen=True)
class Command:
  snippet: Snippet
  kind: str  # jaxlab | bench | launch | sbatch
  argv: tuple  # after the program (for sbatch: the script's arguments)
  env: tuple = ()  # NAME=value words before the program


# ------------------------------------------------------------------ extraction

def _join_continuations(numbered_lines):
  """(line number, text) of logical lines: a trailing backslash continues a line."""
  logical, start, parts = [], None, []
  for number, line in numbered_lines:
    start = number if start is None else start
    if line.rstrip().endswith('\\'):
      parts.append(line.rstrip()[:-1])
      continue
    logical.append((start, ' '.join(p.strip() for p in [*parts, line])))
    start, parts = None, []
  if parts:
    logical.append((start, ' '.join(p.strip() for p in parts)))
  return logical


def _code_snippets(name, numbered_lines, variables=()):
  """Snippets of a code block; with `$ ` prompts, the other lines are their output."""
  lines = [(n, l) for n, l in _join_continuations(numbered_lines) if l.strip()]
  if not any(l.lstrip().startswith('$ ') for _, l in lines):
    return [Snippet(f'{name}:{n}', l.strip(), True, None, variables) for n, l in lines]
  snippets = []
  for n, line in lines:
    if line.lstrip().startswith('$ '):
      snippets.append([n, line.lstrip()[2:], []])
    elif snippets:
      snippets[-1][2].append(line.strip())
  return [Snippet(f'{name}:{n}', text, True, '\n'.join(out) or None, variables)
          for n, text, out in snippets]


def _inline_snippets(name, text):
  """`code spans` of prose (they may wrap, but not over an empty line)."""
  return [Snippet(f'{name}:{text.count(chr(10), 0, m.start()) + 1}',
                  ' '.join(m[1].split()), False)
          for m in re.finditer(r'`([^`\n]+(?:\n[^`\n]+)*)`', text)]


def markdown_snippets(path):
  name = str(path.relative_to(ROOT))
  fence = re.compile(r'^\s*```(\{[\w-]+\}|\w*)\s*$')  # a language, or a MyST {directive}
  variables = tuple(re.findall(r'^\s*([A-Z_]+)="([^"$]*)"\s*$', path.read_text(), re.M))
  snippets, prose, block, language = [], [], None, ''
  for number, line in enumerate(path.read_text().splitlines(), 1):
    opened = fence.match(line)
    if opened and block is None:
      block, language = [], opened[1]
      prose.append('')
    elif opened:
      if language != 'python' and not language.startswith('{'):
        snippets += _code_snippets(name, block, variables)
      block = None
      prose.append('')
    elif block is not None:
      block.append((number, line))
      prose.append('')
    else:
      prose.append(line)
  return snippets + _inline_snippets(name, '\n'.join(prose))


COMMAND_LINE = re.compile(r'^\s*(\$ )?(jaxlab|python3?|sbatch|srun|DRY_RUN=\S+ bash) ')


def text_snippets(name, text):
  """Help texts and docstrings: indented command lines, and code spans in the prose."""
  numbered = list(enumerate(text.splitlines(), 1))
  commands = [(n, l) for n, l in _join_continuations(numbered) if COMMAND_LINE.match(l)]
  prose = '\n'.join('' if COMMAND_LINE.match(l) else l for _, l in numbered)
  return ([Snippet(f'{name}:{n}', l.strip().removeprefix('$ '), True) for n, l in commands]
          + _inline_snippets(name, prose))


def launch_module():
  spec = importlib.util.spec_from_file_location('tpu_launch', LAUNCH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def sbatch_snippets():
  text = SBATCH.read_text()
  comments = '\n'.join(l[1:] if l.startswith('#') and not l.startswith(('#!', '#SBATCH')) else ''
                       for l in text.splitlines())
  messages = [Snippet(f'tpu/slurm/jaxlab.sbatch:{text.count(chr(10), 0, m.start()) + 1}',
                      m[1], True)
              for m in re.finditer(r'"(sbatch tpu/slurm/jaxlab\.sbatch --[^"]*)"', text)]
  return text_snippets('tpu/slurm/jaxlab.sbatch', comments) + messages


def all_snippets():
  snippets = [s for path in MARKDOWN for s in markdown_snippets(path)]
  for name in EXPERIMENTS:
    path = ROOT / 'experiments' / f'{name}.py'
    snippets += text_snippets(f'experiments/{name}.py', ast.get_docstring(ast.parse(
        path.read_text())))
  snippets += text_snippets('jaxlab --help', help_texts())
  parser, subparsers = LAUNCH_MODULE.build_parser()
  snippets += text_snippets('tpu/launch.py --help', parser.format_help())
  snippets += [Snippet(f'tpu/launch.py {name} usage example', sub.example, True)
               for name, sub in subparsers.items()]
  return snippets + sbatch_snippets()


def help_texts():
  """What `jaxlab --help` and each `jaxlab COMMAND --help` print (bench: the suite's own
  parser, checked as a bench command)."""
  from jaxlab import main
  from jaxlab.commands import table
  texts = [main.help_text(['--help'])] + [main.help_text([name, '--help'])
                                          for name in table.COMMANDS]
  return '\n\n'.join(text for text in texts if text)


def _expand_variables(text, variables):
  values = {**ENVIRONMENT, **dict(variables)}
  return re.sub(r'\$\{?(\w+)\}?', lambda m: values.get(m[1], m[0]), text)


def _words(snippet):
  text = re.sub(r'(^|\s)#.*$', '', snippet.text)  # a shell comment
  return shlex.split(_expand_variables(text, snippet.variables))


def _recognise(words):
  """(kind, argv, env) of one simple command, or None if it is not jaxlab's."""
  env = list(itertools.takewhile(lambda w: re.match(r'^[A-Za-z_]\w*=', w), words))
  words = words[len(env):]
  if not words:
    return None
  head, python = words[0], re.fullmatch(r'(\S*/)?python3?(\.\d+)?', words[0])
  if head == 'jaxlab':
    return 'jaxlab', words[1:], env
  if python and words[1:3] == ['-m', 'jaxlab.main']:
    return 'jaxlab', words[3:], env
  if python and words[1:3] == ['-m', 'benchmarks.run']:
    return 'bench', words[3:], env
  if python and words[1:2] == ['tpu/launch.py']:
    return 'launch', words[2:], env
  scripts = [i for i, w in enumerate(words) if w.endswith('tpu/slurm/jaxlab.sbatch')]
  if head in ('sbatch', 'bash') and scripts:
    return 'sbatch', words[scripts[0] + 1:], env
  if head == 'srun' and 'jaxlab.main' in words:
    return 'jaxlab', words[words.index('jaxlab.main') + 1:], env
  return None


def commands_in(snippet):
  commands, current = [], []
  for word in [*_words(snippet), ';']:
    if word not in OPERATORS:
      current.append(word)
      continue
    found = _recognise(current)
    if found:
      kind, argv, env = found
      commands.append(Command(snippet, kind, tuple(argv), tuple(env)))
    current = []
  return commands


def _alternatives(word):
  """`--checkpoint=best|latest|STEP` -> the flag with each value; `a|b` -> a, b."""
  flag, equals, value = word.partition('=') if word.startswith('--') else ('', '', word)
  return [flag + equals + choice for choice in value.split('|')]


def variants(argv):
  """Synopsis syntax to concrete argvs: [optional] parts kept, each a|b alternative
  tried, `...` repetitions dropped, placeholders replaced."""
  words = [w.replace('[', '').replace(']', '') for w in argv]
  words = [w for w in words if w not in ('', '...')]
  return [[_substitute(w) for w in combination]
          for combination in itertools.product(*map(_alternatives, words))]


def _substitute(word):
  for pattern, value in PLACEHOLDERS:
    word = re.sub(pattern, value, word)
  return word


LAUNCH_MODULE = launch_module()
SNIPPETS = all_snippets()
COMMANDS = [c for s in SNIPPETS for c in commands_in(s)]


# -------------------------------------------------------------------- checking

@dataclasses.dataclass
class Plan:
  """What checking one documented command takes."""
  errors: list = dataclasses.field(default_factory=list)  # found without the worker
  accepted: list = dataclasses.field(default_factory=list)  # argvs launch.py's parser took
  checks: list = dataclasses.field(default_factory=list)  # for docs_commands_worker
  dry_runs: list = dataclasses.field(default_factory=list)  # train argvs to compile


def _is_train(argv):
  positional = [w for w in argv if not w.startswith('-')]
  return not positional or positional[0] == 'train'


def _expected_error(snippet):
  """The error a `$ command` example shows, up to where the doc elides it with `...`."""
  if snippet.output and 'error:' in snippet.output:
    return ' '.join(snippet.output.split('...')[0].split())
  return None


def _plan_jaxlab(plan, argv, complete):
  if argv[:1] == ['bench']:
    plan.checks.append(dict(kind='bench', argv=argv[1:]))
    return
  plan.checks.append(dict(kind='jaxlab', argv=argv, complete=complete))
  if complete and _is_train(argv):
    kept = [w for w in argv if w != 'train' and not w.startswith(('--workdir', '--dry_run',
                                                                  *MULTIPROCESS_FLAGS))]
    plan.dry_runs.append(('train', *kept))


def _plan_launch(plan, argv, complete):
  stderr = io.StringIO()
  try:
    with contextlib.redirect_stderr(stderr):
      args = LAUNCH_MODULE.parse(argv)
      args.commands(args)
  except SystemExit:
    plan.errors.append(stderr.getvalue().strip())
    return
  except LAUNCH_MODULE.UsageError as error:
    plan.errors.append(f'launch.py: {error}')
    return
  plan.accepted.append(argv)
  if args.subcommand == 'run':
    _plan_jaxlab(plan, LAUNCH_MODULE.train_argv(args), complete)


def _plan_sbatch(plan, argv, env, output):
  result = subprocess.run(['bash', str(SBATCH), *argv], capture_output=True, text=True,
                          timeout=30, env={**os.environ, 'DRY_RUN': '1',
                                           **dict(w.split('=', 1) for w in env)})
  if result.returncode != 0:
    plan.errors.append(f'the sbatch script exits {result.returncode}: {result.stderr.strip()}')
    return
  if output is not None and result.stdout.strip() != output:
    plan.errors.append(f'the sbatch script prints\n{result.stdout.strip()}\nnot\n{output}')
  found = _recognise(shlex.split(result.stdout))
  if not found or found[0] != 'jaxlab':
    plan.errors.append(f'the sbatch script does not start jaxlab: {result.stdout.strip()}')
    return
  _plan_jaxlab(plan, list(found[1]), complete=True)


def plan(command):
  result = Plan()
  # A mistake the docs show on purpose is parsed (and must be rejected), not compiled.
  complete = command.snippet.complete and not _expected_error(command.snippet)
  for argv in variants(command.argv):
    leftovers = [w for w in argv if LEFTOVER_PLACEHOLDER.search(w)]
    if leftovers:
      result.errors.append(f'{leftovers}: not a value jaxlab can use, nor a placeholder '
                           'that tests/test_docs_commands.py knows (PLACEHOLDERS)')
    elif command.kind == 'jaxlab':
      _plan_jaxlab(result, argv, complete)
    elif command.kind == 'bench':
      result.checks.append(dict(kind='bench', argv=argv))
    elif command.kind == 'launch':
      _plan_launch(result, argv, complete)
    else:
      _plan_sbatch(result, argv, command.env, command.snippet.output)
  return result


def run_worker(checks, devices=1, timeout=300):
  """Results of docs_commands_worker for `checks`, in one process."""
  env = {**os.environ, 'XLA_FLAGS': (os.environ.get('XLA_FLAGS', '') +
                                     f' --xla_force_host_platform_device_count={devices}')}
  result = subprocess.run([sys.executable, '-m', 'tests.docs_commands_worker'], cwd=ROOT,
                          env=env, input=json.dumps(checks), capture_output=True, text=True,
                          timeout=timeout)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def _key(check):
  return json.dumps(check, sort_keys=True)


PLANS = {command: plan(command) for command in COMMANDS}
DRY_RUNS = sorted({argv for p in PLANS.values() for argv in p.dry_runs})


@pytest.fixture(scope='module')
def parsed():
  """Every documented command's parse checks, and BROKEN's, run in one process."""
  checks = {_key(c): c for p in PLANS.values() for c in p.checks}
  checks.update({_key(c): c for c in BROKEN})
  return dict(zip(checks, run_worker(list(checks.values()))))


@pytest.mark.parametrize('command', COMMANDS, ids=lambda c: f'{c.snippet.where}: {c.snippet.text}')
def test_documented_command_parses(command, parsed):
  planned = PLANS[command]
  results = [(c['argv'], parsed[_key(c)]) for c in planned.checks]
  expected = _expected_error(command.snippet)
  if expected:  # an example of a mistake: the CLI must reject it as the doc shows
    assert [r['ok'] for _, r in results] == [False]
    assert ' '.join(results[0][1]['error'].split()).startswith(expected), results[0][1]['error']
    return
  assert not planned.errors
  assert planned.checks or planned.accepted, 'nothing was checked'
  failures = [f'{argv}: {result["error"]}' for argv, result in results if not result['ok']]
  assert not failures


# A checker that accepts everything would pass the test above: these must be rejected.
BROKEN = [
    dict(kind='jaxlab', complete=True, argv=argv) for argv in [
        ['train', '--config=experiments/vit.py', '--workdir=w'],
        ['train', '--config=experiments/mnist.py', '--workdir=w'],
        ['train', '--config=experiments/digits_cnn.py', '--workdir=w', '--config.optimizer.lr=1e-3'],
        ['train', '--config=experiments/digits_cnn.py', '--workdir=w', '--config.data.batch_size=abc'],
        ['train', '--config=experiments/digits_cnn.py:large', '--workdir=w'],
        ['train', '--config=experiments/digits_cnn.py', '--workdir=w', '--lr=1'],
        ['fit', '--config=experiments/digits_cnn.py', '--workdir=w'],
        ['train', '--config=experiments/digits_cnn.py'],
        ['train', '--workdir=w'],
        ['eval', '--checkpoint=best'],
        ['eval', '--workdir=w', 'extra'],
        ['predict', '--workdir=w', 'notes.docx'],
        ['sample', '--workdir=w'],
        ['sample', '--prompt=hi'],
        ['sample', '--workdir=w', '--prompt=hi', '--temperature=hot'],
        ['sample', '--workdir=w', '--prompt=hi', 'extra'],
    ]] + [dict(kind='bench', argv=argv) for argv in [['--only=vit'], ['--fast']]]


@pytest.mark.parametrize('check', BROKEN, ids=lambda c: ' '.join([c['kind'], *c['argv']]))
def test_the_checker_rejects_broken_commands(check, parsed):
  assert not parsed[_key(check)]['ok']


@pytest.mark.parametrize('text', [
    'jaxlab train --config=experiments/digits_cnn.py --workdir=$SCRATCH/run',
    'jaxlab eval --workdir=<workdir>',
    'jaxlab train --config=experiments/digits_cnn.py --workdir=gs://MY_BUCKET/x',
    'jaxlab train --config=experiments/digits_cnn.py --workdir=~/runs/x',
    'python tpu/launch.py run --name=t --zone=z --config=experiments/vit.py --workdir=gs://b/x',
    'python tpu/launch.py run --name=t --zone=z --config=experiments/digits_cnn.py',
    'DRY_RUN=1 bash tpu/slurm/jaxlab.sbatch --config=experiments/digits_cnn.py',
])
def test_unknown_placeholders_and_bad_tpu_commands_are_caught(text):
  (command,) = commands_in(Snippet('test', text, True))
  planned = plan(command)
  caught = planned.errors or not all(r['ok'] for r in run_worker(planned.checks))
  assert caught


def test_every_source_yields_commands():
  pages = ['configs', 'training', 'inference', 'export_and_serving', 'research_features',
           'scaling_out', 'cloud_storage', 'models']
  sources = ['README.md', 'tpu/README.md', *(f'docs/{page}.md' for page in pages), 'jaxlab --help',
             'tpu/launch.py --help', 'tpu/launch.py run usage example', 'tpu/slurm/jaxlab.sbatch',
             *(f'experiments/{name}.py' for name in EXPERIMENTS)]
  assert [s for s in sources if not any(c.snippet.where.startswith(s) for c in COMMANDS)] == []
  unchecked = [s for s in SNIPPETS if LOOKS_LIKE_A_COMMAND.search(s.text) and not commands_in(s)]
  assert not unchecked


def test_jaxlab_help_prints_the_checked_help_texts():
  from jaxlab import main
  for argv in (['--help'], ['eval', '--help']):
    result = subprocess.run([sys.executable, '-m', 'jaxlab.main', *argv], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert main.help_text(argv) in result.stdout


def test_ci_runs_the_readme_test_command():
  readme = (ROOT / 'README.md').read_text()
  quickstart = re.search(r'## Quickstart.*?```bash\n(.*?)```', readme, re.S)[1].splitlines()
  assert len(quickstart) == 2
  assert quickstart[1] in (ROOT / '.ci' / 'run').read_text().splitlines()


# The config arguments each experiment is loaded with to collect its keys.
EXPERIMENT_ARGS = {'finetune_pretrained': (str(ROOT / 'tests/fixtures/imported/vit'),
                                           str(ROOT / 'tests/fixtures/imported/llama'))}


def _all_keys():
  keys = set()
  for name in EXPERIMENTS:
    for arg in EXPERIMENT_ARGS.get(name, (None, 'smoke')):
      config = load_config(name, arg)
      stack = [('', config)]
      while stack:
        prefix, node = stack.pop()
        for key, value in node.items():
          keys.add(prefix + key)
          if hasattr(value, 'items'):
            stack.append((f'{prefix}{key}.', value))
  return keys


def test_config_keys_named_in_prose_exist():
  """`--config.KEY` in any doc, and docs/configs.md's list of common fields, name real fields."""
  keys = _all_keys()
  texts = [p.read_text() for p in MARKDOWN] + [SBATCH.read_text(), help_texts(),
                                               LAUNCH.read_text()]
  named = {k.rstrip('.') for t in texts for k in re.findall(r'--config\.([a-z_][\w.]*)', t)}
  configs_page = (ROOT / 'docs' / 'configs.md').read_text()
  common = re.search(r'Common fields \(.*?\):(.*?)\n\n', configs_page, re.S)[1]
  listed = set(re.findall(r'`([a-z_][\w.]*)(?:\.\*)?`', common))
  mistakes = {k for s in SNIPPETS if _expected_error(s)
              for k in re.findall(r'--config\.([a-z_][\w.]*)', s.text)}
  assert len(listed) > 20 and mistakes == {'optimizer.learnin_rate'}
  assert not mistakes & keys
  assert not (named | listed) - keys - mistakes


@pytest.fixture(scope='module')
def dry_runs():
  """`jaxlab train ... --dry_run` of every documented train command up to XLA's compile
  (traced and lowered onto its mesh), on 8 CPU devices (the README's mesh examples need 8),
  in one process."""
  checks = [dict(kind='dry_run', argv=list(argv)) for argv in DRY_RUNS]
  return dict(zip(DRY_RUNS, run_worker(checks, devices=8, timeout=600)))


@pytest.mark.slow  # traces every documented train command (about 40 s)
@pytest.mark.parametrize('argv', DRY_RUNS, ids=' '.join)
def test_documented_train_command_lowers_onto_its_mesh(argv, dry_runs):
  assert dry_runs[argv]['ok'], dry_runs[argv]['error']
