"""Churn risk: which customers are about to leave, from how their calls went and their RFM.

Features per lead (its person's calls, as of a moment): call attempts and the share answered,
bot calls, days since the last contact, success and transfer shares, an opt-out, the mean
grade, the silence ratio (share of talk time the customer did not speak), repeat requests,
no-matches and objections per call, the agitation peak, and the RFM fields. Labels are the
CRM's (API or import), each with the time the churn (or its absence) was seen.

The model is scikit-learn's logistic regression on standardised features, calibrated with
Platt scaling (`CalibratedClassifierCV`, sigmoid); it is stored as JSON numbers (medians,
scaler, coefficients, calibration), versioned in `churn_models`, and applied here without
scikit-learn. It is judged on a time-based hold-out (the latest labels) against a baseline
trained on the RFM fields alone: AUC, Brier score and expected calibration error (ECE).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np

from analytics.periodic import PeriodicJob
from analytics.rfm import combined_priority, measures, score_leads
from analytics.settings import ChurnSettings, RfmSettings
from store import churn as db
from store.leads import set_priorities

log = logging.getLogger(__name__)

FEATURES = (
    "attempts", "answer_rate", "calls", "days_since_contact", "success_share",
    "transfer_share", "opted_out", "grade_score", "silence_ratio", "repeats_per_call",
    "no_matches_per_call", "objections_per_call", "agitation_peak", "recency_days",
    "frequency", "monetary",
)  # fmt: skip
BASELINE_FEATURES = ("recency_days", "frequency", "monetary")
CALIBRATION_BINS = 10


class ChurnModelError(ValueError):
    """Not enough labels to train or evaluate, or no model yet."""


def _ratio(part: float | None, whole: float | None) -> float:
    return float(part) / float(whole) if part is not None and whole else math.nan


def _or_nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def feature_vector(row: Mapping[str, Any], rfm: RfmSettings) -> list[float]:
    """One lead's features (NaN where it has no value: filled with the training medians)."""
    as_of: datetime = row["as_of"]
    calls = row["calls"]
    last = row["last_contact"]
    talk, speech = row["talk_s"], row["speech_s"]
    silence = min(1.0, max(0.0, 1.0 - (speech or 0.0) / talk)) if talk else math.nan
    recency, frequency, monetary = measures(row["fields"] or {}, rfm, as_of)
    values = {
        "attempts": float(row["attempts"]),
        "answer_rate": _ratio(row["answered"], row["attempts"]),
        "calls": float(calls),
        "days_since_contact": (as_of - last).total_seconds() / 86400 if last else math.nan,
        "success_share": _or_nan(row["success_share"]),
        "transfer_share": _or_nan(row["transfer_share"]),
        "opted_out": float(row["opted_out"]),
        "grade_score": _or_nan(row["grade_score"]),
        "silence_ratio": silence,
        "repeats_per_call": _ratio(row["repeats"], calls),
        "no_matches_per_call": _ratio(row["no_matches"], calls),
        "objections_per_call": _ratio(row["objections"], calls),
        "agitation_peak": _or_nan(row["agitation_peak"]),
        "recency_days": math.nan if recency is None else -recency,
        "frequency": _or_nan(frequency),
        "monetary": _or_nan(monetary),
    }
    return [values[name] for name in FEATURES]


@dataclass(frozen=True)
class LinearChurnModel:
    """A calibrated logistic regression as plain numbers."""

    features: tuple[str, ...]
    median: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    calib_a: float  # Platt: p = 1 / (1 + exp(a * f + b)), f the regression's log-odds
    calib_b: float

    def _z(self, x: np.ndarray) -> np.ndarray:
        filled = np.where(np.isnan(x), np.asarray(self.median), x)
        return (filled - np.asarray(self.mean)) / np.asarray(self.scale)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        f = self._z(x) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(self.calib_a * f + self.calib_b))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Each feature's share of each lead's calibrated log-odds, against an average lead."""
        return self._z(x) * np.asarray(self.coef) * -self.calib_a

    def params(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LinearChurnModel:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})


def fit(x: np.ndarray, y: np.ndarray, features: Sequence[str]) -> LinearChurnModel:
    """Fit and calibrate (scikit-learn); ChurnModelError when a class is too small."""
    from sklearn.calibration import CalibratedClassifierCV  # noqa: PLC0415 - only to train
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    minority = int(min(y.sum(), len(y) - y.sum()))
    if minority < 2:
        raise ChurnModelError("need at least 2 churned and 2 retained customers to train")
    median = np.nanmedian(np.where(np.isnan(x).all(axis=0), 0.0, x), axis=0)
    filled = np.where(np.isnan(x), median, x)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    calibrated = CalibratedClassifierCV(
        pipeline, method="sigmoid", cv=min(3, minority), ensemble=False
    ).fit(filled, y)
    fitted = calibrated.calibrated_classifiers_[0]
    scaler, regression = fitted.estimator[0], fitted.estimator[1]
    calibrator = fitted.calibrators[0]
    scale = np.where(scaler.scale_ == 0, 1.0, scaler.scale_)
    return LinearChurnModel(
        features=tuple(features),
        median=tuple(float(v) for v in median),
        mean=tuple(float(v) for v in scaler.mean_),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in regression.coef_[0]),
        intercept=float(regression.intercept_[0]),
        calib_a=float(calibrator.a_),
        calib_b=float(calibrator.b_),
    )


@dataclass(frozen=True)
class CalibrationBin:
    predicted: float  # mean predicted risk in the bin
    observed: float  # share that churned
    leads: int


@dataclass(frozen=True)
class Scores:
    auc: float
    brier: float
    ece: float
    calibration: list[CalibrationBin]


def judge(y: np.ndarray, p: np.ndarray) -> Scores:
    from sklearn.metrics import brier_score_loss, roc_auc_score  # noqa: PLC0415

    order = np.argsort(p, kind="stable")
    bins = [b for b in np.array_split(order, min(CALIBRATION_BINS, len(p))) if len(b)]
    calibration = [
        CalibrationBin(float(p[b].mean()), float(y[b].mean()), int(len(b))) for b in bins
    ]
    ece = sum(c.leads * abs(c.predicted - c.observed) for c in calibration) / len(p)
    return Scores(
        auc=float(roc_auc_score(y, p)),
        brier=float(brier_score_loss(y, p)),
        ece=float(ece),
        calibration=calibration,
    )


@dataclass(frozen=True)
class Evaluation:
    """The model against the RFM-only baseline on the latest labels (time-based hold-out)."""

    auc: float
    baseline_auc: float
    brier: float
    baseline_brier: float
    ece: float
    baseline_ece: float
    calibration: list[CalibrationBin]
    baseline_calibration: list[CalibrationBin]
    train: int
    test: int
    train_churned: int
    test_churned: int
    split_at: str  # labels seen from this moment on are the hold-out

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LabelledSet:
    x: np.ndarray
    y: np.ndarray
    seen: list[datetime]


async def labelled_set(
    conn: asyncpg.Connection | asyncpg.Pool, churn: ChurnSettings, rfm: RfmSettings
) -> LabelledSet:
    """Every labelled lead's features as of the moment its label was seen, oldest first."""
    found = await db.labels(conn)
    rows = await db.feature_rows(
        conn,
        [label.lead_id for label in found],
        [label.observed_at for label in found],
        churn.objection_intents,
    )
    by_lead = {label.lead_id: label for label in found}
    x = np.array([feature_vector(r, rfm) for r in rows], dtype=float).reshape(-1, len(FEATURES))
    y = np.array([int(by_lead[r["lead_id"]].churned) for r in rows], dtype=int)
    return LabelledSet(x, y, [by_lead[r["lead_id"]].observed_at for r in rows])


def _columns(names: Sequence[str]) -> list[int]:
    return [FEATURES.index(n) for n in names]


def evaluate_split(data: LabelledSet, churn: ChurnSettings) -> Evaluation:
    """Train on the earlier labels, judge on the latest `holdout_share` of them."""
    n = len(data.y)
    if n < churn.min_labels:
        raise ChurnModelError(
            f"{n} labelled customers; at least {churn.min_labels} are needed "
            "(post labels to /v1/leads/{lead_id}/churn or `outdial models labels churn FILE`)"
        )
    cut = int(round(n * (1 - churn.holdout_share)))
    train, test = slice(0, cut), slice(cut, n)
    y_test = data.y[test]
    if y_test.min() == y_test.max():
        raise ChurnModelError("the hold-out (the latest labels) has only one class")
    model = fit(data.x[train], data.y[train], FEATURES)
    base_cols = _columns(BASELINE_FEATURES)
    baseline = fit(data.x[train][:, base_cols], data.y[train], BASELINE_FEATURES)
    ours = judge(y_test, model.probabilities(data.x[test]))
    theirs = judge(y_test, baseline.probabilities(data.x[test][:, base_cols]))
    return Evaluation(
        auc=ours.auc,
        baseline_auc=theirs.auc,
        brier=ours.brier,
        baseline_brier=theirs.brier,
        ece=ours.ece,
        baseline_ece=theirs.ece,
        calibration=ours.calibration,
        baseline_calibration=theirs.calibration,
        train=cut,
        test=n - cut,
        train_churned=int(data.y[train].sum()),
        test_churned=int(y_test.sum()),
        split_at=data.seen[cut].isoformat(),
    )


async def evaluate(pool: asyncpg.Pool, churn: ChurnSettings, rfm: RfmSettings) -> Evaluation:
    data = await labelled_set(pool, churn, rfm)
    return await asyncio.to_thread(evaluate_split, data, churn)


@dataclass(frozen=True)
class Trained:
    version: int
    evaluation: Evaluation
    labels: int


async def train(pool: asyncpg.Pool, churn: ChurnSettings, rfm: RfmSettings) -> Trained:
    """Evaluate on the time-based hold-out, then fit on every label and store a new version
    with the hold-out's figures."""
    data = await labelled_set(pool, churn, rfm)
    evaluation = await asyncio.to_thread(evaluate_split, data, churn)
    model = await asyncio.to_thread(fit, data.x, data.y, FEATURES)
    training = {"labels": len(data.y), "churned": int(data.y.sum()),
                "last_label_at": data.seen[-1].isoformat()}  # fmt: skip
    metrics = {k: v for k, v in evaluation.as_json().items() if "calibration" not in k}
    version = await db.save_model(pool, FEATURES, model.params(), metrics, training)
    return Trained(version, evaluation, len(data.y))


def score_payload(score: db.ScoreRow) -> dict[str, Any]:
    """The outbox event's `churn`: the risk, the model and what raised it."""
    return {
        "score": round(score.score, 4),
        "model_version": score.model_version,
        "top_features": score.top_features,
    }


class ChurnScorer:
    """Scores leads with the newest stored model (re-read when a new version appears)."""

    def __init__(self, churn: ChurnSettings, rfm: RfmSettings) -> None:
        self.churn = churn
        self.rfm = rfm
        self._model: tuple[int, LinearChurnModel] | None = None

    async def model(
        self, conn: asyncpg.Connection | asyncpg.Pool
    ) -> tuple[int, LinearChurnModel] | None:
        version = await db.latest_model_version(conn)
        if version is None:
            return None
        if self._model is None or self._model[0] != version:
            stored = await db.latest_model(conn)
            assert stored is not None
            self._model = (stored.version, LinearChurnModel.from_params(stored.params))
        return self._model

    async def score(
        self,
        conn: asyncpg.Connection | asyncpg.Pool,
        lead_ids: Sequence[int],
        now: datetime | None = None,
    ) -> dict[int, db.ScoreRow]:
        """Score the leads as of `now`, store the scores, and return them ({} with no model)."""
        loaded = await self.model(conn)
        if loaded is None or not lead_ids:
            return {}
        version, model = loaded
        moment = now or datetime.now(UTC)
        rows = await db.feature_rows(
            conn, lead_ids, [moment] * len(lead_ids), self.churn.objection_intents
        )
        if not rows:
            return {}
        x = np.array([feature_vector(r, self.rfm) for r in rows], dtype=float)
        risk = model.probabilities(x)
        parts = model.contributions(x)
        scores = {
            r["lead_id"]: db.ScoreRow(
                r["lead_id"], version, float(risk[i]), self._top(x[i], parts[i], model)
            )
            for i, r in enumerate(rows)
        }
        await db.save_scores(conn, list(scores.values()))
        return scores

    def _top(
        self, x: np.ndarray, parts: np.ndarray, model: LinearChurnModel
    ) -> list[dict[str, Any]]:
        """The features that raise this lead's risk most, with their values."""
        order = [i for i in np.argsort(-parts) if parts[i] > 0][: self.churn.top_features]
        return [
            {
                "feature": model.features[i],
                "value": None if math.isnan(x[i]) else round(float(x[i]), 4),
                "contribution": round(float(parts[i]), 4),
            }
            for i in order
        ]


async def rescore_waiting(
    pool: asyncpg.Pool, scorer: ChurnScorer, now: datetime | None = None
) -> int:
    """Score every lead an active campaign still has to dial and set its lease priority to
    RFM plus churn risk (`analytics.churn.priority_weight` points for a risk of 1)."""
    waiting = await db.waiting_leads(pool)
    if not waiting or await scorer.model(pool) is None:
        return 0
    scores = await scorer.score(pool, [lead_id for lead_id, _, _ in waiting], now)
    moment = now or datetime.now(UTC)
    priorities: list[tuple[int, int]] = []
    for campaign_id in dict.fromkeys(c for _, c, _ in waiting):
        leads = [(lead_id, fields) for lead_id, c, fields in waiting if c == campaign_id]
        for rfm in score_leads(leads, scorer.rfm, moment):
            risk = scores[rfm.lead_id].score if rfm.lead_id in scores else 0.0
            priorities.append(
                (rfm.lead_id, combined_priority(rfm.priority, risk, scorer.churn.priority_weight))
            )
    await set_priorities(pool, priorities, pending_only=True)
    return len(scores)


def churn_scoring_job(pool: asyncpg.Pool, scorer: ChurnScorer) -> PeriodicJob:
    """Rescores waiting leads every `analytics.churn.score_interval_s` (the daemon's)."""

    async def run_once() -> None:
        scored = await rescore_waiting(pool, scorer)
        if scored:
            log.info("churn risk: scored %d waiting leads", scored)

    return PeriodicJob("churn-scoring", scorer.churn.score_interval_s, run_once)
