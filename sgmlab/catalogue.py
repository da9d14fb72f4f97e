"""Every name a user can type, and the object it stands for: samplers (with what the command line,
the bench and the exact-law routes need to know about each), grids, processes, targets and
diffusers' peers. Adding a sampler is its file plus one line here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import grids, samplers
from . import processes as P
from .targets import BUILTIN


@dataclass(frozen=True)
class SamplerEntry:
    """A sampler and its properties: ``family`` "ou" (OU and VP processes), "cld" or "langevin" (no
    noising: the target's own score at the grid's last time); score ``evaluations`` per step;
    ``deterministic``; ``exact_law``, the route to its exact output law on Gaussian targets
    ("affine": :func:`sgmlab.samplers.exact_output_law`, "deterministic":
    :func:`~sgmlab.samplers.deterministic_output_law`, "multistep":
    :func:`~sgmlab.samplers.multistep_output_law`, "cld": :func:`~sgmlab.samplers.cld_exact_output_law`,
    or None); ``zero_end``, whether its grid may end at t = 0 (a final denoising step)."""

    name: str
    sampler: Any
    family: str
    evaluations: int
    deterministic: bool
    exact_law: str | None
    zero_end: bool = False
    about: str = ""


def _entries() -> dict[str, SamplerEntry]:
    S = samplers
    rows = [
        ("exponential_integrator", S.exponential_integrator, "ou", 1, False, "affine", False,
         "the paper's DDPM sampler (the exponential integrator)"),
        ("euler_maruyama", S.euler_maruyama, "ou", 1, False, "affine", False, "Euler-Maruyama on the reverse SDE"),
        ("ddpm_ancestral", S.ddpm_ancestral, "ou", 1, False, "affine", False, "Ho et al.'s ancestral step"),
        ("exponential_sde_2", S.exponential_sde_2, "ou", 1, False, "multistep", False,
         "the exponential integrator with the score extrapolated from 2 steps"),
        ("exponential_sde_3", S.exponential_sde_3, "ou", 1, False, "multistep", False, "the same from 3 steps"),
        ("dpm_solver_pp_1", S.dpm_solver_pp_1, "ou", 1, True, "deterministic", True, "DPM-Solver++ 1 (DDIM)"),
        ("dpm_solver_pp_2m", S.dpm_solver_pp_2m, "ou", 1, True, "deterministic", True, "DPM-Solver++ 2M"),
        ("dpm_solver_pp_3m", S.dpm_solver_pp_3m, "ou", 1, True, "deterministic", True,
         "DPM-Solver++ 3M (sg.sample's default)"),
        ("unipc_2", S.unipc_2, "ou", 1, True, "deterministic", True, "UniPC, order 2 with the corrector"),
        ("unipc_3", S.unipc_3, "ou", 1, True, "deterministic", True, "UniPC, order 3 with the corrector"),
        ("probability_flow_euler", S.probability_flow_euler, "ou", 1, True, "deterministic", False,
         "Euler on the probability-flow ODE"),
        ("probability_flow_heun", S.probability_flow_heun, "ou", 2, True, "deterministic", False,
         "Heun on the probability-flow ODE"),
        ("predictor_corrector", S.predictor_corrector, "ou", 2, False, None, False,
         "the exponential integrator with a Langevin corrector"),
        ("unadjusted_langevin", S.unadjusted_langevin, "langevin", 1, False, None, False,
         "Langevin with the target's own score (no noising)"),
        ("cld_exponential_integrator", S.cld_exponential_integrator, "cld", 1, False, "cld", False,
         "CLD's exponential integrator (the paper's CLD algorithm)"),
        ("cld_euler_maruyama", S.cld_euler_maruyama, "cld", 1, False, "cld", False, "Euler-Maruyama for CLD"),
        ("cld_sscs", S.cld_sscs, "cld", 1, False, "cld", False, "CLD's symmetric splitting (SSCS-style)"),
    ]
    return {r[0]: SamplerEntry(*r) for r in rows}


SAMPLERS: dict[str, SamplerEntry] = _entries()
# A sampler entry's exact_law route -> the function computing its exact output law on Gaussian targets.
EXACT_LAWS: dict[str, Any] = {"affine": samplers.exact_output_law, "deterministic": samplers.deterministic_output_law,
                              "multistep": samplers.multistep_output_law, "cld": samplers.cld_exact_output_law}
# Other names in use: plan files and `sgmlab tune` say dpmpp_3m; CLD models took their samplers' short names.
ALIASES = {"dpmpp_3m": "dpm_solver_pp_3m", "dpmpp_2m": "dpm_solver_pp_2m", "sscs": "cld_sscs"}
DEFAULT = "default"  # sg.sample's choice for the budget (sgmlab.default_plan)
# Samplers that run a plan (a grid that may end with the denoising step): PlanScheduler's plan_sampler.
PLAN_SAMPLERS = tuple(n for n, e in SAMPLERS.items() if e.zero_end)
# Samplers sg.tune fits grids for, by the short names plan files and `sgmlab tune --sampler` use.
TUNABLE: dict[str, Any] = {short: SAMPLERS[ALIASES.get(short, short)].sampler
                           for short in ("dpmpp_3m", "dpmpp_2m", "unipc_3", "unipc_2")}


def check_default_alone(sampler: str | None, grid: object, T: object, delta: object) -> None:
    """``default`` brings its own grid, T and delta: refuse any given beside it (None: not given)."""
    given = [f"--{k}" for k, v in (("grid", grid), ("T", T), ("delta", delta)) if v is not None]
    if sampler == DEFAULT and given:
        raise ValueError(f"--sampler default brings its own grid, T and delta; drop {', '.join(given)}")

GRIDS = {"uniform": grids.uniform, "exponential": grids.exponential, "two_phase": grids.two_phase,
         "log_snr": grids.log_snr, "log_snr_focused": grids.log_snr_focused, "karras": grids.karras,
         "vp_linear": grids.vp_linear}
PROCESSES: dict[str, P.Process] = {"ou": P.OU(), "vp-linear": P.VP(P.LinearBeta()), "vp-cosine": P.VP(P.CosineBeta())}
TARGETS = BUILTIN


def digits_target() -> Any:
    """The empirical law of scikit-learn's digits, standardized (one mean and scale): a real-data target."""
    from .learn.data import load_data
    from .targets import Empirical

    x = load_data("digits").x
    return Empirical((x - x.mean()) / x.std())


# The bench's fixed targets (`sgmlab bench --targets`), built on demand: digits loads a data set.
BENCH_TARGETS: dict[str, Any] = {
    "gaussian10": lambda: BUILTIN["gaussian"].make(10), "gaussian100": lambda: BUILTIN["gaussian"].make(100),
    "mixture2d": lambda: BUILTIN["mixture2d"].make(None), "mixture16": lambda: BUILTIN["mixture"].make(16),
    "digits": digits_target}


def sampler(name: str, family: str | None = None) -> SamplerEntry:
    """The catalogue entry for ``name`` (or an alias), of ``family`` if given; a clear error otherwise."""
    entry = SAMPLERS.get(ALIASES.get(name, name))
    choices = sorted(n for n, e in SAMPLERS.items() if family is None or e.family == family)
    if entry is None or (family is not None and entry.family != family):
        raise ValueError(f"unknown sampler {name!r}{f' for the {family} family' if family else ''}; "
                         f"expected one of {choices}")
    return entry


def name_of(sampler_obj: Any) -> str:
    """The catalogue name of a sampler object."""
    for name, e in SAMPLERS.items():
        if e.sampler is sampler_obj or e.sampler == sampler_obj:
            return name
    raise ValueError(f"{sampler_obj!r} is not in the catalogue")


def peers() -> tuple[str, ...]:
    """diffusers' schedulers the bench compares against (sgmlab.interop.peers)."""
    from .interop.peers import PEERS

    return PEERS
