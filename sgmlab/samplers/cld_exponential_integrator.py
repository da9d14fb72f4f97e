"""The paper's exponential integrator for CLD (Chen et al. 2023, the CLD section)."""

from __future__ import annotations

from ..processes import CLD
from .cld_base import CLDSampler, Stage, chol2, linear_flow


class CLDExponentialIntegrator(CLDSampler):
    r"""Velocity score frozen at the left end of each step, the linear part of the reverse SDE
    solved exactly. Per coordinate pair, with :math:`A' = -A` and :math:`Q = \mathrm{diag}(0, 2\Gamma)`:

    .. math::
        z_{k+1} = e^{hA'} z_k + \Psi_h \begin{pmatrix}0\\ 2\Gamma\end{pmatrix} s_v(z_k, t_k) + \xi_k,\quad
        \Psi_h = \int_0^h e^{uA'}du,\quad \xi_k \sim N\Bigl(0, \int_0^h e^{uA'}Qe^{uA'^\top}du\Bigr).

    For the paper's defaults :math:`e^{hA'} = e^h[[1-h, -h], [h, 1+h]]` (tested against
    ``matrix_exp`` and quadrature).
    """

    def __repr__(self) -> str:
        return "CLDExponentialIntegrator()"

    def stages(self, process: CLD, t: float, t_next: float) -> list[Stage]:
        Phi, Psi, noise = linear_flow(-process.A, process.Q, t - t_next)
        return [Stage(Phi, Psi[:, 1] * 2 * process.friction, chol2(noise), t)]


cld_exponential_integrator = CLDExponentialIntegrator()
