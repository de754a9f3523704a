"""DistributedDataParallel with gloo on CPU: 2 processes on localhost. Each rank
draws different masks by default (the rank is the counter word b2), identical
ones inside identical_masks(), and training proceeds with ranks in sync."""
import os
import socket

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

import dropout_fast.torch as dt  # noqa: E402

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)  # the usual DDP setup: every rank seeded alike
        x = torch.ones(4096)
        folded = dt.dropout(x, 0.5)
        with dt.identical_masks():
            same = dt.dropout(x, 0.5)
        net = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                  torch.nn.Linear(64, 1))
        dt.patch_model(net)
        model = torch.nn.parallel.DistributedDataParallel(net)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        g = torch.Generator().manual_seed(100 + rank)  # each rank its own data shard
        data = torch.randn(128, 16, generator=g)
        target = data[:, :1] * 2 - data[:, 1:2]
        losses = []
        for _ in range(30):
            opt.zero_grad()
            loss = ((model(data) - target) ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        params = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        torch.save({"folded": folded, "same": same, "losses": losses, "params": params,
                    "stream": dt.stream_id()}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_two_ranks_gloo(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD))
    assert (r0["stream"], r1["stream"]) == (0, 1)
    assert not torch.equal(r0["folded"], r1["folded"])       # different masks by default
    assert torch.equal(r0["same"], r1["same"])               # identical_masks(): equal
    assert torch.equal(r0["params"], r1["params"])           # DDP kept the replicas in sync
    for r in (r0, r1):
        assert r["losses"][-1] < 0.7 * r["losses"][0]         # training proceeds
