"""scikit-learn's side of bench/optimize (run by the benchmark with /usr/bin/python3).

Reads a JSON spec (path in argv[1]): the rows X and class indices y, the
estimator's family, scikit-learn's param_grid, the folds as (train, test) index
lists, n_jobs, the seed and the number of repeats. Runs GridSearchCV (refit=False,
as Drover's search does not refit either) repeat times and prints one JSON object:
the wall time of each fit call, the best mean CV score and its parameters, every
point's mean score, and the versions used.
"""

import json
import sys
import time

import numpy as np
import sklearn
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier


def estimator(family, seed):
    if family == "logistic_regression":
        # Drover standardises the features of its linear families: the same as this pipeline.
        return make_pipeline(StandardScaler(), LogisticRegression(penalty="l2", solver="lbfgs"))
    if family == "random_forest":
        return RandomForestClassifier(random_state=seed)
    if family == "decision_tree":
        return DecisionTreeClassifier(random_state=seed)
    if family == "gradient_boosting":
        return GradientBoostingClassifier(random_state=seed)
    raise SystemExit("gridsearch.py: unknown family %r" % family)


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    X = np.asarray(spec["X"], dtype=np.float64)
    y = np.asarray(spec["y"], dtype=np.int64)
    cv = [(np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64)) for tr, te in spec["folds"]]
    walls = []
    gs = None
    for _ in range(spec["repeat"]):
        gs = GridSearchCV(estimator(spec["family"], spec["seed"]), spec["param_grid"], scoring="accuracy",
                          cv=cv, n_jobs=spec["n_jobs"], refit=False)
        t0 = time.perf_counter()
        gs.fit(X, y)
        walls.append(time.perf_counter() - t0)
    res = gs.cv_results_
    json.dump({
        "wall_s": walls,
        "best_score": float(gs.best_score_),
        "best_params": {k: v for k, v in gs.best_params_.items()},
        "means": [float(m) for m in res["mean_test_score"]],
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
