"""Training a score network by denoising score matching, with checkpoints that resume exactly.

One checkpoint file, ``checkpoint.safetensors``, holds the network, its EMA, the optimizer state,
the random generator's state, the standardization and (in its metadata) the step, the config and
the history. It is replaced atomically, so a crash leaves the previous checkpoint intact, and it
is loaded without unpickling anything.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from .. import _checks
from ..processes import OU, VP, CosineBeta, LinearBeta, Process

# the forward processes a model can be trained for (names at the config boundary)
PROCESSES = ("ou", "vp-linear", "vp-cosine", "cld")


def vp_family(name: str) -> Process:
    """The OU or VP process of a config name ('cld' is handled separately)."""
    return {"ou": OU, "vp-linear": lambda: VP(LinearBeta()), "vp-cosine": lambda: VP(CosineBeta())}[name]()
from . import networks
from . import parametrization as param
from .loss import TIME_SAMPLINGS, WEIGHTINGS, dsm_loss, sample_times, time_weights
from .model import ScoreModel, Standardizer, data_box

FORMAT = "sgmlab-checkpoint-1"
CHECKPOINT = "checkpoint.safetensors"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (saved in the checkpoint and as config.json)."""

    net: str = "mlp"
    hidden: int = 128
    depth: int = 3
    parametrization: str = "noise"
    weighting: str = "a3"
    time_sampling: str = "log-uniform"
    T: float = 5.0
    delta: float = 1e-3
    steps: int = 4000
    batch_size: int = 512
    lr: float = 2e-3
    ema: float = 0.999
    seed: int = 0
    standardize: str = "feature"
    eval_every: int = 500
    checkpoint_every: int = 500
    process: str = "ou"
    cld_hybrid: bool = True  # CLD: hybrid score matching (v_0 marginalised) or plain denoising score matching
    embedding: str = "log"  # time embedding (networks.FourierEmbedding); models saved before it existed: "v1"
    lr_schedule: str = "constant"  # "constant", or "cosine": linear warm-up over 5% of the steps, cosine decay to 0
    clip: float = 0.0  # gradient norm clipping (0: none)
    image_shape: tuple[int, int] | None = None  # net "unet": the images' (H, W) (default: square)
    adam_beta1: float = 0.9  # Adam's first-moment decay
    reference: int = 0  # stable target field: rows of the reference set (the batch, then draws from the data); 0: off
    warmup: int | None = None  # "cosine": warm-up steps (None: 5% of the steps)

    def __post_init__(self) -> None:
        if self.process not in PROCESSES:
            raise ValueError(f"process must be one of {PROCESSES}; got {self.process!r}")
        if self.process.startswith("vp") and self.T > vp_family(self.process).t_max:
            raise ValueError(f"T={self.T} is beyond the range of {self.process} (t_max={vp_family(self.process).t_max})")
        if self.process == "cld" and (self.weighting != "a3" or self.parametrization != "noise" or self.reference):
            raise ValueError("CLD training uses the a3 weighting, the noise parametrization and no stable target "
                             "(reference 0)")
        if self.net not in networks.NETS:
            raise ValueError(f"net must be one of {networks.NETS}; got {self.net!r}")
        if self.image_shape is not None:
            shape = tuple(self.image_shape)
            if len(shape) != 2 or not all(isinstance(v, int) and v > 0 for v in shape):
                raise ValueError(f"image_shape must be two positive integers (H, W); got {self.image_shape!r}")
            object.__setattr__(self, "image_shape", shape)  # a JSON list back to a tuple
        param.check(self.parametrization)
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}; got {self.weighting!r}")
        if self.time_sampling not in TIME_SAMPLINGS:
            raise ValueError(f"time_sampling must be one of {TIME_SAMPLINGS}; got {self.time_sampling!r}")
        for name in ("hidden", "depth", "steps", "batch_size", "eval_every", "checkpoint_every"):
            _checks.positive_int(name, getattr(self, name))
        _checks.real("delta", self.delta, low=0.0, low_open=True)
        _checks.real("T", self.T, low=self.delta, low_open=True)
        _checks.real("lr", self.lr, low=0.0, low_open=True)
        _checks.real("ema", self.ema, low=0.0, high=1.0, high_open=True)
        if self.embedding not in networks.EMBEDDINGS:
            raise ValueError(f"embedding must be one of {networks.EMBEDDINGS}; got {self.embedding!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine'; got {self.lr_schedule!r}")
        _checks.real("clip", self.clip, low=0.0)
        _checks.positive_int("reference", self.reference, minimum=0)
        if self.warmup is not None:
            _checks.positive_int("warmup", self.warmup, minimum=0)
        _checks.real("adam_beta1", self.adam_beta1, low=0.0, high=1.0, high_open=True)
        if self.standardize not in ("feature", "global", "none"):
            raise ValueError(f"standardize must be 'feature', 'global' or 'none'; got {self.standardize!r}")


# The default recipes of `sgmlab train` (TrainConfig's own defaults are the paper's objective: the a3
# weighting of eps_score^2 under the OU process). benchmarks/recipe_vs_diffusers.md measures them
# against the diffusers recipe, benchmarks/recipe_ablation.md (vectors) and recipe_ablation_digits.md (images)
# each choice.
IMAGE_RECIPE: dict[str, Any] = dict(net="unet", hidden=32, depth=1, process="vp-linear", T=1.0, delta=1e-3,
                                    time_sampling="uniform", weighting="eps", batch_size=128, lr=4e-3,
                                    adam_beta1=0.95, reference=1024, lr_schedule="cosine", clip=1.0,
                                    standardize="global", steps=8000)
VECTOR_RECIPE: dict[str, Any] = dict(net="mlp", hidden=128, depth=3, standardize="feature", batch_size=256,
                                     adam_beta1=0.95, warmup=500, lr_schedule="cosine", clip=1.0, ema=0.9997,
                                     reference=1024, steps=20_000)
NET_SIZES = {"mlp": (128, 3), "unet8": (32, 3), "unet": (32, 1)}  # (hidden, depth) of each network by default
_PROCESS_FIELDS = ("process", "T", "delta", "time_sampling", "weighting")


def recipe(image_shape: tuple[int, int] | None = None, **choices: Any) -> TrainConfig:
    """``sgmlab train``'s recipe for a data set, as a TrainConfig.

    Images of ``image_shape`` (H, W): the U-Net (diffusers' ``UNet2DModel`` layout, 32 and 64
    channels) trained on the noise MSE at uniform times of the linear VP schedule with the stable
    target over 1024 reference images, batch 128, Adam 4e-3 (beta1 0.95) with warm-up, cosine
    decay and clipping at 1, 8000 steps. Tables and vectors (``image_shape`` None): the MLP on the
    paper's objective (OU, the A3 weighting, log-uniform times) with the stable target over 1024
    reference rows, batch 256, Adam 2e-3 (beta1 0.95), 500 warm-up steps (at most a tenth of the
    steps, so that a short run still decays), the same decay and clipping, EMA 0.9997, 20000 steps.
    Either model samples with the box of its data (``ScoreModel.box``).
    ``choices`` override any field; choosing another process drops the recipe's times and
    weighting for TrainConfig's defaults (T the end of a VP clock; CLD: no stable target), another
    network takes its own default sizes.
    """
    base = dict(IMAGE_RECIPE, image_shape=tuple(image_shape)) if image_shape is not None else dict(VECTOR_RECIPE)
    if "process" in choices and choices["process"] != base.get("process", "ou"):
        base = {k: v for k, v in base.items() if k not in _PROCESS_FIELDS}
    if choices.get("net", base["net"]) != base["net"]:  # another network: its own sizes
        base = {**base, **dict(zip(("hidden", "depth"), NET_SIZES[choices["net"]]))}
    merged = {**base, **choices}
    if merged.get("process") == "cld" and "reference" not in choices:  # CLD's hybrid loss has no stable target
        merged["reference"] = 0
    if merged.get("warmup") is not None and "warmup" not in choices:  # a short run is not all warm-up
        merged["warmup"] = min(merged["warmup"], merged.get("steps", TrainConfig.steps) // 10)
    if str(merged.get("process", "ou")).startswith("vp") and "T" not in merged:  # the VP clock ends at t_max
        merged["T"] = vp_family(merged["process"]).t_max
    return TrainConfig(**merged)


def saved_config(meta: dict[str, str]) -> TrainConfig:
    """The TrainConfig a checkpoint's metadata holds; a checkpoint from before a field existed gets
    the value it was trained with (the time embedding was then "v1")."""
    raw = json.loads(meta["config"])
    raw.setdefault("embedding", "v1")
    return TrainConfig(**raw)


class TrainInfo(NamedTuple):
    step: int
    steps: int
    loss: float
    eval_loss: float | None


@dataclass
class TrainResult:
    """A trained model (EMA weights), its standardization, config and training history; ``sample``
    draws from it in data units."""

    model: ScoreModel  # with the EMA weights
    standardizer: Standardizer
    config: TrainConfig
    history: list[dict[str, float]] = field(default_factory=list)

    def sample(self, n: int, *, nfe: int = 20, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """n samples in data units with the trained-model default for ``nfe`` score evaluations
        (:func:`model_default_plan`) inside the range the model was trained on, [delta, T] (OU and VP models).
        The model's score works in standardized units, with the box of its training data at high
        noise (``self.model.box``; set it to None to sample without); the samples are mapped back.
        The state is float32 by default, as the network is."""
        from ..defaults import sample

        if self.config.process == "cld":
            raise ValueError("a CLD model samples with the CLD samplers (`sgmlab sample --model`), not sg.sample")
        process = vp_family(self.config.process)
        plan = model_default_plan(process, self.config.delta, self.config.T, nfe, self.config.standardize)
        x = sample(self.model.score_fn(), n, self.standardizer.mean.shape[0], nfe=nfe, process=process,
                   plan=plan, generator=generator, dtype=dtype)
        return self.standardizer.inverse(x)


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _data_hash(data: torch.Tensor) -> str:
    return hashlib.sha256(data.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def _state_tensors(net: nn.Module, ema: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
                   std: Standardizer, box: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {f"model.{k}": v.detach().cpu().clone().contiguous() for k, v in net.state_dict().items()}
    out.update({f"ema.{k}": v.detach().cpu().clone().contiguous() for k, v in ema.state_dict().items()})
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().cpu().clone().contiguous()
    out["rng"] = gen.get_state()
    out["standardizer.mean"], out["standardizer.scale"] = std.mean.contiguous(), std.scale.contiguous()
    out["box.lo"], out["box.hi"] = (b.contiguous() for b in box)
    return out


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write atomically: a temporary file in the same folder, then rename over the old one."""
    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".checkpoint.", suffix=".tmp")
    os.close(fd)
    try:
        try:
            save_file(tensors, tmp, metadata={**metadata, "sha256": _checksum(tensors, metadata)})
        except Exception as e:  # safetensors' own error for I/O failures (a full disk, a size limit)
            if isinstance(e, OSError):
                raise
            raise OSError(f"writing the checkpoint {path} failed: {e}") from None
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; the checkpoint follows the user's umask
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _checksum(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """SHA-256 of the tensors (name, dtype, shape, bytes, in name order) and the other metadata."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(json.dumps({k: v for k, v in sorted(metadata.items()) if k != "sha256"}).encode())
    return h.hexdigest()


def read_metadata(folder: str | Path) -> dict[str, str]:
    """A checkpoint's metadata (step, config) without reading its tensors; ``read_checkpoint`` checks them."""
    from safetensors import safe_open

    path = Path(folder) / CHECKPOINT
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as e:
        raise ValueError(f"checkpoint {path} is corrupted or truncated ({type(e).__name__}: {e})") from None


def model_default_plan(process: Process, delta: float, T: float, nfe: int, standardize: str = "feature") -> Any:
    """sg.sample's plan for a trained model for ``nfe`` evaluations inside its trained range [delta, T]
    (the process's clock), its grid in that clock: the trained-model rows
    (``default_plan(..., trained=True)``, chosen on feature-standardized data) for a model whose data
    was standardized so, the exact table's rows clamped into the range for the others (image models)."""
    from ..defaults import default_plan, in_clock

    plan = default_plan(nfe, t_range=(float(process.ou_time(delta)), float(process.ou_time(T))),
                        trained=standardize == "feature")
    return plan._replace(grid=in_clock(plan.grid, process))


def read_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a checkpoint; a clear ValueError if missing, truncated or corrupted."""
    from safetensors import safe_open

    path = Path(folder) / CHECKPOINT
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for bad headers and short files
        raise ValueError(f"checkpoint {path} is corrupted or truncated ({type(e).__name__}: {e})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} is not an sgmlab checkpoint (format {meta.get('format')!r})")
    if "sha256" in meta and _checksum(tensors, meta) != meta["sha256"]:
        raise ValueError(f"checkpoint {path} fails its checksum: the file was altered or damaged after it was written")
    return tensors, meta


def _load_module(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path: str) -> None:
    own = module.state_dict()
    got = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    if set(got) != set(own) or any(got[k].shape != own[k].shape for k in own):
        raise ValueError(f"checkpoint {path} does not match the network of its config ({prefix} tensors differ)")
    module.load_state_dict(got)


def _build_model(config: TrainConfig, dim: int) -> tuple[nn.Module, nn.Module]:
    """(network, score model around it): OU models map x to the score; CLD models map z = [x, v]
    (2d) to the velocity score (d). Networks are float32 whatever the default dtype."""
    out_dim = dim if config.process == "cld" else None
    net = networks.build(config.net, 2 * dim if out_dim else dim, config.hidden, config.depth, out_dim=out_dim,
                         embedding=config.embedding, image_shape=config.image_shape)
    return net, _build_model_around(config, net)


def load_model(folder: str | Path) -> TrainResult:
    """The trained model (EMA weights), standardization and config of a training folder."""
    tensors, meta = read_checkpoint(folder)
    path = Path(folder) / CHECKPOINT
    try:
        config = saved_config(meta)
        dim = tensors["standardizer.mean"].shape[0]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path} holds no valid training config ({e})") from None
    with torch.device("meta"):  # the config's sizes against the weights before anything is allocated
        shapes = {k: tuple(v.shape) for k, v in _build_model(config, dim)[0].state_dict().items()}
    got = {k[len("ema."):]: tuple(v.shape) for k, v in tensors.items() if k.startswith("ema.")}
    if got != shapes:
        raise ValueError(f"checkpoint {path}: its config (net {config.net}, hidden {config.hidden}, depth "
                         f"{config.depth}, d {dim}) does not match its weights")
    net, model = _build_model(config, dim)
    _load_module(net, tensors, "ema", str(folder))
    std = Standardizer(tensors["standardizer.mean"], tensors["standardizer.scale"])
    if isinstance(model, ScoreModel) and "box.lo" in tensors:  # folders from before the box sample without it
        model.box = tensors["box.lo"], tensors["box.hi"]
    return TrainResult(model.eval(), std, config, json.loads(meta.get("history", "[]")))


def default_device() -> torch.device:
    """CUDA when present (under torchrun: the process's local GPU), else CPU; a clear error when
    torchrun started more processes on this node than it has GPUs."""
    if torch.cuda.is_available():
        local, gpus = int(os.environ.get("LOCAL_RANK", 0)), torch.cuda.device_count()
        if local >= gpus:
            raise ValueError(f"torchrun started process {local} on a node with {gpus} GPU(s): for the GPUs, start at "
                             f"most {gpus} per node (--nproc_per_node={gpus}); to run every process on the CPU, hide "
                             "the GPUs (CUDA_VISIBLE_DEVICES=)")
        return torch.device("cuda", local)
    return torch.device("cpu")


def _env_int(name: str, low: int, high: int | None = None) -> int | None:
    """A torchrun variable as an integer in [low, high), None when it is not set."""
    raw = os.environ.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"the environment variable {name}={raw!r} is not an integer; torchrun sets it (unset it to "
                         "run one process)") from None
    if value < low or (high is not None and value >= high):
        raise ValueError(f"the environment variable {name}={value} is outside [{low}, {high if high is not None else ''}"
                         f"{')' if high is not None else 'inf)'}; torchrun sets RANK below WORLD_SIZE (unset them to "
                         "run one process)")
    return value


def rendezvous_seconds() -> float:
    """How long the first meeting of the processes may take (``SGMLAB_RENDEZVOUS_SECONDS``, default 300)."""
    raw = os.environ.get("SGMLAB_RENDEZVOUS_SECONDS", "300")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (0 < value < math.inf):
        raise ValueError(f"SGMLAB_RENDEZVOUS_SECONDS={raw!r} must be a positive number of seconds")
    return value


def init_distributed() -> bool:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1): gloo for CPU tensors,
    and NCCL for CUDA ones when the node has a GPU for each of its processes (each takes its own).

    torchrun's variables are checked first (integers, RANK below WORLD_SIZE, MASTER_ADDR and
    MASTER_PORT set with them), so a stale WORLD_SIZE in the shell is an error naming it, not a wait;
    the first meeting of the processes times out after :func:`rendezvous_seconds` with a message
    naming the variables."""
    world = _env_int("WORLD_SIZE", 1)
    if world is None or world == 1:
        _env_int("RANK", 0, 1)  # a lone process must be rank 0
        return False
    if torch.distributed.is_initialized():
        return False
    rank = _env_int("RANK", 0, world)
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if rank is None or missing:
        raise ValueError(f"WORLD_SIZE={world} is set but {', '.join((['RANK'] if rank is None else []) + missing)} "
                         "is not: launch with torchrun, or unset WORLD_SIZE to run one process")
    port = _env_int("MASTER_PORT", 1, 65536)
    local_size = _env_int("LOCAL_WORLD_SIZE", 1) or world
    _env_int("LOCAL_RANK", 0, local_size)
    from datetime import timedelta

    seconds = rendezvous_seconds()
    try:
        store = torch.distributed.TCPStore(os.environ["MASTER_ADDR"], port, world, is_master=rank == 0,
                                           timeout=timedelta(seconds=seconds))
    except (RuntimeError, OSError) as e:
        raise ValueError(f"the processes did not meet within {seconds:g} s (RANK={rank}, WORLD_SIZE={world}, "
                         f"MASTER_ADDR={os.environ['MASTER_ADDR']}, MASTER_PORT={port}): are all {world} started by "
                         f"torchrun? ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if torch.cuda.is_available() and local_size <= torch.cuda.device_count():
        torch.cuda.set_device(default_device())
        torch.distributed.init_process_group("cpu:gloo,cuda:nccl", store=store, rank=rank, world_size=world)
    else:
        torch.distributed.init_process_group("gloo", store=store, rank=rank, world_size=world)
    return True


def _build_model_around(config: TrainConfig, net: nn.Module) -> nn.Module:
    if config.process == "cld":
        from .cld import CLDScoreModel

        return CLDScoreModel(net)
    return ScoreModel(net, config.parametrization, vp_family(config.process))


def _loss_for(config: TrainConfig) -> Callable[..., torch.Tensor]:
    """loss(model, x0, t, noise, w, reference=None) for the config's process: DSM (OU, VP; with
    reference rows, the stable target) or hybrid score matching (CLD)."""
    if config.process == "cld":
        from ..processes import CLD
        from .cld import cld_dsm_loss

        cld = CLD()
        return lambda m, x0, t, z, w, ref=None: cld_dsm_loss(m, x0, t, z, w, cld, hybrid=config.cld_hybrid)
    process = vp_family(config.process)
    return lambda m, x0, t, z, w, ref=None: dsm_loss(m, x0, t, z, w, process, ref)


@contextlib.contextmanager
def _deferred_interrupt(enabled: bool) -> Any:
    """Within the block, a first SIGINT only appends to the yielded list (the loop checks it between
    steps); a second one interrupts at once. Off the main thread, or not ``enabled``: nothing changes."""
    flag: list[bool] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag:
            raise KeyboardInterrupt
        flag.append(True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def cosine_factor(step: int, steps: int, warmup: int | None = None) -> float:
    """The cosine schedule's learning-rate factor at ``step`` (0-based) of ``steps``: a linear warm-up
    over ``warmup`` steps (default: the first 5%), then a cosine decay to 0 at the end."""
    warm = max(1, steps // 20 if warmup is None else min(warmup, steps))
    return (step + 1) / warm if step < warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


DETERMINISTIC_CONVOLUTIONS = True  # False: cuDNN may pick nondeterministic kernels (no exact GPU resume)


@contextlib.contextmanager
def _deterministic_convolutions():
    """cuDNN's deterministic kernels while training: without them two GPU runs of the U-Net (and a
    run and its resumption) differ after a few steps (benchmarks/gpu.md); they cost no speed there."""
    cudnn = torch.backends.cudnn
    before = cudnn.deterministic, cudnn.benchmark
    if DETERMINISTIC_CONVOLUTIONS:
        cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = before


@_deterministic_convolutions()
def train(data: torch.Tensor, config: TrainConfig = TrainConfig(), *, out: str | Path | None = None,
          resume: bool = False, callback: Callable[[TrainInfo], Any] | None = None,
          device: torch.device | str | None = None) -> TrainResult:
    """Train a score network on ``data`` (shape (N, d)) by denoising score matching under
    ``config.process`` (OU, VP with a linear or cosine schedule; CLD by hybrid score matching).

    Batches, times and noise come from one generator seeded by ``config.seed``; its state is
    checkpointed, so ``resume=True`` continues exactly where the last checkpoint stopped and gives
    the same result as an uninterrupted run. Under ``torchrun`` (a process group initialised) each
    process takes its share of the same global batch and DistributedDataParallel averages the
    gradients, which equals single-process training on the global batch up to rounding.

    ``device`` defaults to CUDA when present. Randomness is drawn on the CPU and moved, so a run
    is reproducible across devices up to the arithmetic of the network; on a GPU, cuDNN's
    deterministic kernels are used while training, so that resume stays exact there too.
    """
    device = default_device() if device is None else torch.device(device)
    data = _checks.as_tensor("data", data, ndim=2)
    if data.shape[0] < 2:
        raise ValueError(f"data needs at least 2 rows; got {data.shape[0]}")
    rank, world = _world()
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the number of processes {world}")
    folder = Path(out) if out is not None else None
    if resume and folder is None:
        raise ValueError("resume needs the folder of the run (out)")
    std = Standardizer.fit(data, config.standardize)
    box = data_box(std.forward(data.to(torch.float64)), config.standardize)
    x_all = std.forward(data).float().to(device)
    torch.manual_seed(config.seed)  # network initialisation only
    net, model = _build_model(config, data.shape[1])
    net = net.to(device)
    ema = copy.deepcopy(net).requires_grad_(False)
    params, ema_params = list(net.parameters()), list(ema.parameters())
    opt = torch.optim.Adam(params, lr=config.lr, betas=(config.adam_beta1, 0.999), fused=True)
    gen = torch.Generator().manual_seed(config.seed)
    process = OU() if config.process == "cld" else vp_family(config.process)  # clock of the time weights
    step, history = 0, []
    digest = _data_hash(data)
    if resume and (folder / CHECKPOINT).exists():
        tensors, meta = read_checkpoint(folder)
        saved = saved_config(meta)
        if replace(saved, steps=config.steps) != config:  # only the number of steps may change
            changed = [f"{k} {v!r} (the checkpoint's: {getattr(saved, k)!r})" for k, v in asdict(config).items()
                       if k != "steps" and v != getattr(saved, k)]
            raise ValueError(f"resume: settings differ from the checkpoint's: {', '.join(changed)}; only --steps "
                             "may change")
        if meta.get("data") != digest:
            raise ValueError("resume: the data differs from the data the checkpoint was trained on")
        if int(meta["step"]) > config.steps:
            raise ValueError(f"resume: the checkpoint is at step {meta['step']}, beyond the {config.steps} steps "
                             "asked for; ask for more steps to continue")
        _load_module(net, tensors, "model", str(folder))
        _load_module(ema, tensors, "ema", str(folder))
        state = opt.state_dict()
        for i in range(len(state["param_groups"][0]["params"])):
            keys = [k for k in tensors if k.startswith(f"opt.{i}.")]
            if keys:
                state["state"][i] = {k.split(".", 2)[2]: tensors[k] if k.endswith(".step") else tensors[k].to(device)
                                     for k in keys}
        opt.load_state_dict(state)
        gen.set_state(tensors["rng"])
        step, history = int(meta["step"]), json.loads(meta["history"])
    elif folder is not None and rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
    trainable: nn.Module = model
    if world > 1:
        trainable = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    eval_gen = torch.Generator().manual_seed(config.seed + 1)
    n_eval = min(4096, x_all.shape[0] * 4)
    eval_x = x_all[torch.randint(x_all.shape[0], (n_eval,), generator=eval_gen).to(device)]
    eval_t = sample_times(n_eval, config.T, config.delta, config.time_sampling, eval_gen, process).to(device)
    width = x_all.shape[1] * ((2 if config.cld_hybrid else 3) if config.process == "cld" else 1)
    eval_z = torch.randn(eval_x.shape[0], width, generator=eval_gen, dtype=x_all.dtype).to(device)
    eval_w = time_weights(eval_t, config.T, config.delta, config.time_sampling, config.weighting, process)
    ema_model = _build_model_around(config, ema)
    if isinstance(ema_model, ScoreModel):  # the sampler projects its denoised estimates onto the data's box
        ema_model.box = box
    loss_fn = _loss_for(config)
    shard = slice(rank * config.batch_size // world, (rank + 1) * config.batch_size // world)

    def checkpoint() -> None:
        if folder is None or rank != 0:
            return
        meta = {"format": FORMAT, "step": str(step), "config": json.dumps(asdict(config)),
                "history": json.dumps(history), "data": digest}
        save_checkpoint(folder / CHECKPOINT, _state_tensors(net, ema, opt, gen, std, box), meta)

    # Ctrl-C is held until the step in progress is complete, then the state is checkpointed (single process:
    # under torchrun the ranks could stop at different steps; there the last periodic checkpoint is kept)
    with _deferred_interrupt(folder is not None and world == 1 and rank == 0) as interrupted:
        while step < config.steps:
            idx = torch.randint(x_all.shape[0], (config.batch_size,), generator=gen).to(device)
            t = sample_times(config.batch_size, config.T, config.delta, config.time_sampling, gen, process).to(device)
            z = torch.randn(config.batch_size, width, generator=gen, dtype=x_all.dtype).to(device)
            w = time_weights(t, config.T, config.delta, config.time_sampling, config.weighting, process)
            x0, ref = x_all[idx], None
            if config.reference:  # the whole batch, then draws from the data: every rank holds the same rows
                extra = max(0, config.reference - config.batch_size)
                ref = torch.cat([x0, x_all[torch.randint(x_all.shape[0], (extra,), generator=gen).to(device)]])
            loss = loss_fn(trainable, x0[shard], t[shard], z[shard], w[shard], ref).mean()
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):  # stop before the step: the last checkpoint stays the last good state
                raise FloatingPointError(f"training diverged: the loss is {loss_value} at step {step + 1} (lr "
                                         f"{config.lr}); the last checkpoint{' in ' + str(folder) if folder else ''} "
                                         "holds the last good state; retrain with a smaller --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip > 0:
                nn.utils.clip_grad_norm_(params, config.clip, foreach=True)
            if config.lr_schedule == "cosine":
                for group in opt.param_groups:
                    group["lr"] = config.lr * cosine_factor(step, config.steps, config.warmup)
            opt.step()
            step += 1
            decay = min(config.ema, (1 + step) / (10 + step))  # warm-up: early weights do not linger in the EMA
            with torch.no_grad():
                torch._foreach_lerp_(ema_params, params, 1 - decay)
            eval_loss = None
            if step % config.eval_every == 0 or step == config.steps:
                with torch.no_grad():
                    eval_loss = float(loss_fn(ema_model, eval_x, eval_t, eval_z, eval_w).mean())
                history.append({"step": step, "loss": loss_value, "eval_loss": eval_loss})
            if step % config.checkpoint_every == 0 or step == config.steps:
                checkpoint()
            if callback is not None and rank == 0:
                callback(TrainInfo(step, config.steps, loss_value, eval_loss))
            if interrupted:  # Ctrl-C arrived during this step: keep it, then stop
                checkpoint()
                raise KeyboardInterrupt(f"interrupted after step {step}")
    return TrainResult(ema_model.eval(), std, config, history)
