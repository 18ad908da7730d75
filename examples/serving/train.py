"""Train a tiny real model for the serving example: scikit-learn's logistic regression on the iris flowers.

Writes what the registry registers: $model_dir/model.joblib, and $model_dir/metrics.json beside it (the
registry records its numbers as the version's metrics). Runs on CPU in a second or two.

    python train.py [--max-iter 200] [--c 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularisation strength")
    args = parser.parse_args()

    features, labels = load_iris(return_X_y=True)
    train_x, test_x, train_y, test_y = train_test_split(features, labels, test_size=0.3, random_state=0)
    model = LogisticRegression(max_iter=args.max_iter, C=args.c).fit(train_x, train_y)
    accuracy = float(model.score(test_x, test_y))

    out = Path(os.environ.get("model_dir", "model_dir"))  # noqa: SIM112 - the platform names it so
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")
    (out / "metrics.json").write_text(json.dumps({"accuracy": accuracy, "c": args.c}))
    print(f"accuracy {accuracy:.3f}; model written to {out / 'model.joblib'}")


if __name__ == "__main__":
    main()
