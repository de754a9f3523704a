"""Two small models with common dropout mistakes, and their corrected versions.

``python -m dropout_fast audit dropout_fast.examples.models:small_resnet``
prints what is wrong with the first; ``fixed_small_resnet`` passes. The same
for ``transformer_encoder`` / ``fixed_transformer_encoder``. Needs torch.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["small_resnet", "fixed_small_resnet", "transformer_encoder",
           "fixed_transformer_encoder"]


class BasicBlock(nn.Module):
    """A ResNet basic block: relu(x + bn2(conv2(drop(relu(bn1(conv1(x))))))).

    `branch_drop` sits inside the residual branch; `skip_drop`, if given,
    drops the identity path (the mistake).
    """

    def __init__(self, channels: int, branch_drop: nn.Module, skip_drop: nn.Module = None):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.drop = branch_drop
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.skip_drop = skip_drop if skip_drop is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self.bn1(self.conv1(x))))
        return torch.relu(self.skip_drop(x) + self.bn2(self.conv2(h)))


class SmallResNet(nn.Module):
    """Stem conv, two residual blocks, global pooling and a dense head (CIFAR-sized input)."""

    def __init__(self, stem_drop: nn.Module, block1: BasicBlock, block2: BasicBlock,
                 head_drop: nn.Module, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32),
                                  nn.ReLU())
        self.stem_drop = stem_drop
        self.block1, self.block2 = block1, block2
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32, 128), nn.ReLU(), head_drop,
                                  nn.Linear(128, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.block2(self.block1(self.stem_drop(self.stem(x))))))


def small_resnet() -> nn.Module:
    """A ResNet-style CNN with four dropout mistakes: element-wise dropout after
    the stem convolution, dropout on a skip connection, heavy dropout before a
    BatchNorm, and 0.7 before the classifier."""
    return SmallResNet(
        stem_drop=nn.Dropout(0.2),
        block1=BasicBlock(32, nn.Identity(), skip_drop=nn.Dropout(0.1)),
        block2=BasicBlock(32, nn.Dropout2d(0.3)),
        head_drop=nn.Dropout(0.7))


def fixed_small_resnet() -> nn.Module:
    """`small_resnet` corrected: no dropout on the stem or the skip path, spatial
    dropout 0.1 inside the second residual branch, 0.5 before the classifier."""
    return SmallResNet(
        stem_drop=nn.Identity(),
        block1=BasicBlock(32, nn.Identity()),
        block2=BasicBlock(32, nn.Dropout2d(0.1)),
        head_drop=nn.Dropout(0.5))


class TransformerClassifier(nn.Module):
    """Token embedding + learned positions, a transformer encoder, mean pooling, a head."""

    def __init__(self, embed_drop: float, layer_drop: float, head_drop: float,
                 vocab: int = 1000, d_model: int = 64, heads: int = 4, layers: int = 2,
                 max_len: int = 128, classes: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.zeros(1, max_len, d_model))
        self.embed_drop = nn.Dropout(embed_drop)
        layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=layer_drop,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head_drop = nn.Dropout(head_drop)
        self.head = nn.Linear(d_model, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed_drop(self.embed(tokens) + self.pos[:, :tokens.shape[1]])
        return self.head(self.head_drop(self.encoder(h).mean(dim=1)))


def transformer_encoder() -> nn.Module:
    """A small transformer classifier with rates outside practice: 0.3 on the
    embeddings, 0.3 attention/residual dropout, 0.6 before the head."""
    return TransformerClassifier(embed_drop=0.3, layer_drop=0.3, head_drop=0.6)


def fixed_transformer_encoder() -> nn.Module:
    """`transformer_encoder` with the usual rates (Vaswani et al. 2017: 0.1)."""
    return TransformerClassifier(embed_drop=0.1, layer_drop=0.1, head_drop=0.3)
