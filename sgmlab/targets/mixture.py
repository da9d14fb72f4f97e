"""Gaussian mixtures with full, diagonal or spherical covariances."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from .. import _checks
from .base import LOG_2PI, Target, chunked
from .gaussian import check_spd


def _responsibilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the components (dim 1), in place unless autograd needs the logits.

    Weights below e^-600 times the largest are raised to that: it changes the result by less than
    K e^-600 (1e-254 for a million components) relative, which float64 cannot represent, and it keeps
    exp from producing subnormal numbers, which make it and the matrix products after it several
    times slower (the score of a data set at small noise levels: 2x in all)."""
    if logits.requires_grad:
        return torch.softmax(logits, dim=1)
    r = logits.sub_(logits.amax(1, keepdim=True)).clamp_(min=-600.0).exp_()
    return r.div_(r.sum(1, keepdim=True))


class GaussianMixture(Target):
    r"""Mixture :math:`q = \sum_k w_k N(m_k, \Sigma_k)`.

    The covariance layout follows scikit-learn's ``covariance_type``, read from the shape of
    ``covs``: (K, d, d) full, (K, d) diagonal, (K,) spherical (:math:`\Sigma_k = s_k I`).
    Diagonal and spherical mixtures use a matrix-product fast path.

    .. math::
        \nabla \log q(x) = \sum_k r_k(x)\, \bigl(-\Sigma_k^{-1}(x - m_k)\bigr), \qquad
        r_k(x) = \operatorname{softmax}_k\bigl(\log w_k + \log N(x; m_k, \Sigma_k)\bigr)

    Evaluation is stable (log-sum-exp) and chunked over the batch so that memory stays bounded
    for up to ~1e6 points and ~1e3 components.

    Parameters
    ----------
    weights : array of shape (K,), non-negative, summing to one
    means : array of shape (K, d)
    covs : array of shape (K, d, d), (K, d) or (K,)
    """

    def __init__(self, weights: Any, means: Any, covs: Any):
        self.means = _checks.as_tensor("means", means, ndim=2)
        dt, dev = self.means.dtype, self.means.device
        self.weights = _checks.as_tensor("weights", weights, ndim=1, dtype=dt, device=dev)
        self.covs = _checks.as_tensor("covs", covs, dtype=dt, device=dev)
        K, d = self.means.shape
        if self.weights.shape[0] != K:
            raise ValueError(f"weights has {self.weights.shape[0]} entries but means has {K} rows; "
                             "expected one weight per component")
        if bool((self.weights < 0).any()):
            raise ValueError(f"weights must be non-negative; got {self.weights.tolist()}")
        total = float(self.weights.sum())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must sum to one; they sum to {total:.10g}")
        if self.covs.shape == (K, d, d):
            self.covariance_type = "full"
            L = check_spd("covs", self.covs)
            eye = torch.eye(d, dtype=dt, device=dev).expand(K, d, d)
            A = torch.linalg.solve_triangular(L, eye, upper=False)  # A_k = L_k^{-1}
            # z_k = A_k (x - m_k) for all k in one matrix product: z = x @ W - b, shape (n, K*d)
            self._W = A.permute(2, 0, 1).reshape(d, K * d)
            self._minus_b = -(A @ self.means.unsqueeze(-1)).reshape(K * d)
            self._V = A.reshape(K * d, d)  # sum_k A_k^T z_k = z_flat @ V
            logdet = 2 * L.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        elif self.covs.shape in ((K, d), (K,)):
            self.covariance_type = "diag" if self.covs.ndim == 2 else "spherical"
            if bool((self.covs <= 0).any()):
                raise ValueError("covs must be positive variances for a "
                                 f"{self.covariance_type} mixture; got minimum {self.covs.min().item():.3g}")
            var = self.covs if self.covs.ndim == 2 else self.covs[:, None].expand(K, d)
            self._iv = 1.0 / var  # (K, d)
            self._miv = self.means * self._iv
            logdet = var.log().sum(-1)
            self._const_diag = (self.means * self._miv).sum(-1)
        else:
            raise ValueError(f"covs must have shape ({K}, {d}, {d}) (full), ({K}, {d}) (diagonal) or "
                             f"({K},) (spherical) for {K} components in {d} dimensions; got {tuple(self.covs.shape)}")
        with torch.no_grad():
            logw = self.weights.log()
        self._log_norm = logw - 0.5 * (logdet + d * LOG_2PI)  # (K,)
        if self.covariance_type != "full":
            # log w_k + log N(x; m_k, S_k) = bias_k + x.miv_k - |x|^2_{iv_k} / 2
            self._bias = self._log_norm - 0.5 * self._const_diag
            self._iv_s = self._iv[:, 0] if self.covariance_type == "spherical" else None  # (K,): 1 / s_k

    def __repr__(self) -> str:
        return f"GaussianMixture(components={self.n_components}, dim={self.dim}, covariance_type={self.covariance_type!r})"

    def to(self, device: torch.device | str) -> GaussianMixture:
        dev = _checks.device(device)
        return self if self.means.device == dev else GaussianMixture(self.weights.to(dev), self.means.to(dev), self.covs.to(dev))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def cov_matrices(self) -> torch.Tensor:
        """Covariances as full matrices, shape (K, d, d)."""
        if self.covariance_type == "full":
            return self.covs
        return torch.diag_embed(1.0 / self._iv)

    # -- per-component log-likelihoods -------------------------------------------------------

    def _logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """log w_k + log N(x; m_k, S_k), shape (n, K); for full covariances also
        z = L_k^{-1}(x - m_k), shape (n, K, d)."""
        if self.covariance_type == "full":
            z = torch.addmm(self._minus_b, x, self._W).view(x.shape[0], self.n_components, self.dim)
            return self._log_norm - 0.5 * torch.linalg.vector_norm(z, dim=-1).square(), z
        if self._iv_s is not None:  # spherical: |x|^2 / s_k is an outer product, not a matrix product
            return torch.addmm(self._bias, x, self._miv.T) - torch.outer((x * x).sum(-1), 0.5 * self._iv_s), None
        return torch.addmm(torch.addmm(self._bias, x * x, self._iv.T, alpha=-0.5), x, self._miv.T), None

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._logits(x)[0], dim=1)

    def _scaled_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The logits up to a constant per row, computed on x / s (s = max |x_i| per row) so that no
        squared distance overflows: log w_k + log N_k - s^2 min_j u_j / 2, with u_k the squared
        Mahalanobis distance of x / s to m_k / s. For points so far out that the plain logits are
        all -inf (|x| above about 1e154), where the score is still finite."""
        s = x.abs().amax(1, keepdim=True).clamp_min(1.0)
        xs = x / s
        if self.covariance_type == "full":
            u = torch.linalg.vector_norm((xs @ self._W + self._minus_b / s).view(x.shape[0], self.n_components,
                                                                                  self.dim), dim=-1).square()
        else:
            u = (((xs[:, None, :] - self.means / s[:, :, None]) ** 2) * self._iv).sum(-1)
        excess = (u - u.amin(1, keepdim=True)) * s * s  # inf for all but the nearest: weight 0 (0 at the nearest)
        return self._log_norm - 0.5 * excess

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        logits, z = self._logits(x)
        far = ~torch.isfinite(logits.amax(1))
        if bool(far.any()):  # rows whose squared distances overflowed
            logits = logits.clone()
            logits[far] = self._scaled_logits(x[far])
        r = _responsibilities(logits)  # (n, K)
        if z is None:
            return r @ self._miv - x * (r @ self._iv if self._iv_s is None else (r @ self._iv_s)[:, None])
        # -sum_k r_k A_k^T z_k (z is a temporary: scaled in place unless autograd needs it)
        rz = z * r.unsqueeze(-1) if z.requires_grad else z.mul_(r.unsqueeze(-1))
        return -(rz.view(x.shape[0], -1) @ self._V)

    def _per_row(self) -> int:
        return self.n_components * (self.dim if self.covariance_type == "full" else 4)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = _checks.points("x", x, self.dim, like=self.means)
        return chunked(self._log_prob, x, self._per_row())

    def score(self, x: torch.Tensor) -> torch.Tensor:
        x = _checks.points("x", x, self.dim, like=self.means)
        return chunked(self._score, x, self._per_row())

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior component probabilities r_k(x), shape (n, K)."""
        x = _checks.points("x", x, self.dim, like=self.means)
        return chunked(lambda c: _responsibilities(self._logits(c)[0]), x, self._per_row())

    # -- sampling and transformations ----------------------------------------------------------

    def sample_with_labels(self, n: int, *, generator: torch.Generator | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact samples (n, d) and the component each came from (n,)."""
        n = _checks.positive_int("n", n, minimum=0)
        _checks.generator_for(generator, self.means.device)
        dt, dev = self.means.dtype, self.means.device
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator) if n else \
            torch.zeros(0, dtype=torch.long, device=dev)
        z = torch.randn(n, self.dim, generator=generator, dtype=dt, device=dev)
        if self.covariance_type == "full":
            # group the draws by component so that each Cholesky factor is applied once
            order = torch.argsort(labels)
            counts = torch.bincount(labels, minlength=self.n_components).tolist()
            L = torch.linalg.cholesky(self.covs)
            x = torch.empty_like(z)
            start = 0
            for k, c in enumerate(counts):
                if c:
                    idx = order[start:start + c]
                    x[idx] = z[idx] @ L[k].T
                    start += c
        else:
            x = z * (1.0 / self._iv[labels]).sqrt()
        return x + self.means[labels], labels

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample_with_labels(n, generator=generator)[0]

    def characteristic_function(self, w: torch.Tensor) -> torch.Tensor:
        r""":math:`\varphi(w) = \sum_k w_k \exp(i w^\top m_k - \tfrac12 w^\top \Sigma_k w)`, w of shape (D, d)."""
        w = self._check_frequencies(w, self.means)
        if self.covariance_type == "full":
            quad = torch.einsum("ja,kab,jb->jk", w, self.covs, w)
        elif self.covariance_type == "diag":
            quad = (w * w) @ self.covs.T
        else:
            quad = (w * w).sum(-1, keepdim=True) * self.covs
        return torch.polar(self.weights * torch.exp(-0.5 * quad), w @ self.means.T).sum(-1)

    def noised(self, a: float, sigma: float) -> GaussianMixture:
        s2 = sigma * sigma
        if self.covariance_type == "full":
            eye = torch.eye(self.dim, dtype=self.means.dtype, device=self.means.device)
            covs = a * a * self.covs + s2 * eye
        else:
            covs = a * a * self.covs + s2
        return GaussianMixture(self.weights, a * self.means, covs)

    def project(self, dims: Sequence[int]) -> GaussianMixture:
        dims = self._check_dims(dims)
        if self.covariance_type == "full":
            covs = self.covs[:, dims][:, :, dims]
        elif self.covariance_type == "diag":
            covs = self.covs[:, dims]
        else:
            covs = self.covs
        return GaussianMixture(self.weights, self.means[:, dims], covs)

    def smallest_scale(self) -> float:
        return math.sqrt(max(float(torch.linalg.eigvalsh(self.cov_matrices()).min()), 0.0))

    def second_moment(self) -> float:
        tr = self.cov_matrices().diagonal(dim1=-2, dim2=-1).sum(-1)
        return float(self.weights @ ((self.means * self.means).sum(-1) + tr))
