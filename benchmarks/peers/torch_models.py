"""The PyTorch models of the larger workloads, written as their users write them.

`resnet18`: torchvision's ResNet-18 (BasicBlock, nn.BatchNorm2d, a 1x1 strided
projection shortcut) with the CIFAR stem (one 3x3 stride-1 convolution, no max-pool), as
in the CIFAR training repositories that copy torchvision's blocks, with torchvision's
`zero_init_residual=True` (each block's last BatchNorm weight 0). The draws are
jaxlab's resnet18's, so both start from the same loss: Kaiming-normal convolutions by
fan-in (torchvision: fan-out) and a lecun-normal head.

`transformer_lm`: a nanoGPT-style decoder in the Llama manner, the architecture of
jaxlab's `transformer_lm` (pre-RMSNorm, rotary positions in the GPT-NeoX half-split
layout, SwiGLU, no biases, an untied head), attention by
`F.scaled_dot_product_attention(is_causal=True)`. Kernels are drawn as Flax's
lecun_normal draws them (truncated normal, std 1/sqrt(fan_in)) and the embedding from
N(0, 1/D); the suite then loads the draw it shares with jaxlab (INIT.npz).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F


# ----------------------------------------------------------------------------
# ResNet-18 (torchvision's BasicBlock, CIFAR stem).


class BasicBlock(nn.Module):
  expansion = 1

  def __init__(self, in_planes, planes, stride=1):
    super().__init__()
    self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.downsample = None
    if stride != 1 or in_planes != planes:
      self.downsample = nn.Sequential(
          nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

  def forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = F.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return F.relu(out + identity)


class ResNet(nn.Module):

  def __init__(self, blocks_per_stage=(2, 2, 2, 2), num_classes=10, zero_init_residual=True,
               width=64):
    super().__init__()
    self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    stages, in_planes = [], width
    widths = [width * 2 ** stage for stage in range(4)]
    for index, (planes, blocks) in enumerate(zip(widths, blocks_per_stage)):
      stride = 1 if index == 0 else 2
      layers = []
      for block in range(blocks):
        layers.append(BasicBlock(in_planes, planes, stride if block == 0 else 1))
        in_planes = planes
      stages.append(nn.Sequential(*layers))
    self.layer1, self.layer2, self.layer3, self.layer4 = stages
    self.fc = nn.Linear(widths[-1], num_classes)
    for module in self.modules():
      if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
      elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    lecun_normal_(self.fc.weight, widths[-1])
    nn.init.zeros_(self.fc.bias)
    if zero_init_residual:
      for module in self.modules():
        if isinstance(module, BasicBlock):
          nn.init.zeros_(module.bn2.weight)

  def forward(self, x):
    x = F.relu(self.bn1(self.conv1(x)))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
    return self.fc(x)


# ----------------------------------------------------------------------------
# A nanoGPT-style decoder, Llama blocks.


def lecun_normal_(weight, fan_in):
  """Flax's lecun_normal: a normal truncated at 2 std, rescaled to variance 1/fan_in."""
  std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
  nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


class RMSNorm(nn.Module):

  def __init__(self, dim, eps=1e-6):
    super().__init__()
    self.eps = eps
    self.weight = nn.Parameter(torch.ones(dim))

  def forward(self, x):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary(seq_len, head_dim, base, device):
  """(sin, cos) of shape (1, 1, T, H/2), the angles of jaxlab's rotary_angles."""
  exponents = torch.arange(head_dim // 2, dtype=torch.float32, device=device) / (head_dim // 2)
  angles = torch.arange(seq_len, dtype=torch.float32, device=device)[:, None] * base ** -exponents
  return angles.sin()[None, None], angles.cos()[None, None]


def apply_rotary(x, sin, cos):
  x1, x2 = x.chunk(2, dim=-1)
  return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class CausalSelfAttention(nn.Module):

  def __init__(self, dim, num_heads):
    super().__init__()
    self.num_heads = num_heads
    self.qkv = nn.Linear(dim, 3 * dim, bias=False)
    self.proj = nn.Linear(dim, dim, bias=False)

  def forward(self, x, sin, cos):
    b, t, d = x.shape
    q, k, v = self.qkv(x).split(d, dim=2)
    q, k, v = (y.view(b, t, self.num_heads, d // self.num_heads).transpose(1, 2)
               for y in (q, k, v))
    q, k = apply_rotary(q, sin, cos), apply_rotary(k, sin, cos)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return self.proj(y.transpose(1, 2).contiguous().view(b, t, d))


class SwiGLU(nn.Module):

  def __init__(self, dim, hidden):
    super().__init__()
    self.gate = nn.Linear(dim, hidden, bias=False)
    self.up = nn.Linear(dim, hidden, bias=False)
    self.down = nn.Linear(hidden, dim, bias=False)

  def forward(self, x):
    return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):

  def __init__(self, dim, num_heads, mlp_dim):
    super().__init__()
    self.attn_norm = RMSNorm(dim)
    self.attn = CausalSelfAttention(dim, num_heads)
    self.mlp_norm = RMSNorm(dim)
    self.mlp = SwiGLU(dim, mlp_dim)

  def forward(self, x, sin, cos):
    x = x + self.attn(self.attn_norm(x), sin, cos)
    return x + self.mlp(self.mlp_norm(x))


class GPT(nn.Module):

  def __init__(self, vocab_size, num_layers, dim, num_heads, mlp_dim, rope_base=10000.0):
    super().__init__()
    self.head_dim, self.rope_base = dim // num_heads, rope_base
    self.embed = nn.Embedding(vocab_size, dim)
    self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_dim) for _ in range(num_layers))
    self.norm = RMSNorm(dim)
    self.head = nn.Linear(dim, vocab_size, bias=False)
    nn.init.normal_(self.embed.weight, std=dim ** -0.5)
    for module in self.modules():
      if isinstance(module, nn.Linear):
        lecun_normal_(module.weight, module.in_features)

  def forward(self, tokens):
    sin, cos = rotary(tokens.shape[1], self.head_dim, self.rope_base, tokens.device)
    x = self.embed(tokens)
    for block in self.blocks:
      x = block(x, sin, cos)
    return self.head(self.norm(x))


def make(workload):
  """The model of a workload of benchmarks.peers.common (its `model` and `options`)."""
  options = dict(workload.options)
  if workload.model == "resnet18":
    return ResNet(num_classes=options["num_classes"], width=options.get("width", 64))
  return GPT(options["vocab_size"], options["num_layers"], options["embed_dim"],
             options["num_heads"], options["mlp_dim"])
