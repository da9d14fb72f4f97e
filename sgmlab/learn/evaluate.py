"""Evaluation of generated digits: a classifier trained on the real digits labels them, and
nearest-neighbour distances show whether the model copies its training images."""

from __future__ import annotations

import numpy as np
import torch


def evaluate_digits(samples: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, *, seed: int = 0) -> dict:
    """``samples`` (n, 64) in pixel units (0..16), ``images``/``labels`` the real digits.

    Returns the class histogram of the samples and its TV to uniform, the classifier's mean
    confidence on samples and on the real test split, its test accuracy, and the distance of each
    sample to its nearest training image against the same for the real test split (a copying
    model has sample distances far below the test split's)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    X, y = images.numpy(), labels.numpy()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    clf = LogisticRegression(max_iter=5000).fit(Xtr / 16, ytr)
    S = samples.detach().cpu().double().numpy()
    p_gen = clf.predict_proba(np.clip(S, 0, 16) / 16)
    p_real = clf.predict_proba(Xte / 16)
    hist = np.bincount(p_gen.argmax(1), minlength=10) / len(S)
    tr = torch.as_tensor(Xtr)

    def nearest(Z: np.ndarray) -> np.ndarray:
        return torch.cdist(torch.as_tensor(Z), tr).min(1).values.numpy()

    d_gen, d_test = nearest(S), nearest(Xte)
    return {"class_histogram": hist.tolist(), "tv_to_uniform": float(0.5 * np.abs(hist - 0.1).sum()),
            "mean_confidence_generated": float(p_gen.max(1).mean()), "mean_confidence_real_test": float(p_real.max(1).mean()),
            "classifier_test_accuracy": float(clf.score(Xte / 16, yte)),
            "nearest_train_distance_generated_median": float(np.median(d_gen)),
            "nearest_train_distance_real_test_median": float(np.median(d_test)),
            "fraction_generated_closer_than_any_test_image": float((d_gen < d_test.min()).mean())}
