"""The whole-process peer: the PyTorch script a user writes for the job that

    jaxlab train --config=experiments/mnist_mlp.py --config.data.name=synthetic --workdir=DIR

does, in the manner of pytorch/examples/mnist/main.py: the same synthetic images
(jaxlab.data.synthetic, uint8, generated in the process), a `DataLoader` over a
`TensorDataset` (shuffled, the last partial batch dropped, as jaxlab drops it), the
Keras-quickstart MLP with Adam(1e-3, eps 1e-7), a test-set evaluation after every epoch
and the weights saved at the end. jaxlab's run does more (metrics.jsonl, TensorBoard
events, a checkpoint per epoch, two PNG plots), so the comparison leans in PyTorch's favour.

    python -m benchmarks.peers.torch_script --workdir=DIR [--epochs=5] [--num_train=N]

The runner times the whole process from outside.
"""

import argparse
import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from jaxlab.data import synthetic


class Net(nn.Module):

  def __init__(self):
    super().__init__()
    self.fc1 = nn.Linear(28 * 28, 128)
    self.fc2 = nn.Linear(128, 10)

  def forward(self, x):
    x = torch.flatten(x, 1).float() / 255.0
    return self.fc2(F.relu(self.fc1(x)))


def train(model, loader, optimizer, epoch):
  model.train()
  for images, labels in loader:
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
  print(f'Train epoch {epoch}: last batch loss {loss.item():.4f}', flush=True)


@torch.no_grad()
def test(model, loader):
  model.eval()
  loss, correct = 0.0, 0
  for images, labels in loader:
    logits = model(images)
    loss += F.cross_entropy(logits, labels, reduction='sum').item()
    correct += (logits.argmax(1) == labels).sum().item()
  count = len(loader.dataset)
  print(f'Test: loss {loss / count:.4f}, accuracy {correct / count:.4f}', flush=True)
  return correct / count


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--epochs', type=int, default=5)
  parser.add_argument('--batch_size', type=int, default=32)
  parser.add_argument('--num_train', type=int, default=None, help='Default: 60,000.')
  parser.add_argument('--num_test', type=int, default=None, help='Default: 10,000.')
  args = parser.parse_args(argv)
  torch.manual_seed(0)
  train_arrays, test_arrays = synthetic.arrays('mnist', args.num_train, args.num_test)
  train_set = TensorDataset(torch.from_numpy(train_arrays['image']),
                            torch.from_numpy(train_arrays['label']).long())
  test_set = TensorDataset(torch.from_numpy(test_arrays['image']),
                           torch.from_numpy(test_arrays['label']).long())
  train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True)
  test_loader = DataLoader(test_set, batch_size=1000)
  model = Net()
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
  for epoch in range(1, args.epochs + 1):
    train(model, train_loader, optimizer, epoch)
    accuracy = test(model, test_loader)
  os.makedirs(args.workdir, exist_ok=True)
  torch.save(model.state_dict(), os.path.join(args.workdir, 'mnist_mlp.pt'))
  print(f'Done: step {args.epochs * len(train_loader)}, test accuracy {accuracy:.4f}, '
        f'{torch.get_num_threads()} threads.')


if __name__ == '__main__':
  main()
