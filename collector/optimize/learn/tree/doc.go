// Package tree trains Drover's tree families on the rows of a
// learn.Dataset: "decision_tree" (CART), "random_forest" (bagged CART with
// feature subsampling per split) and "gradient_boosting" (gradient-boosted
// regression trees with log-loss or squared error), with the semantics of
// scikit-learn's DecisionTree*, RandomForest* and GradientBoosting*
// estimators. The families register themselves with package learn in init;
// import this package for its side effect.
//
// Features are compared in float32, as scikit-learn's trees and ONNX's
// TreeEnsemble operators do: every threshold is a float32, and a row goes to
// a node's left (true) branch when float32(x) <= threshold. Training and
// Predict use that same comparison, so a trained model and its ONNX export
// (one ai.onnx.ml TreeEnsembleClassifier or TreeEnsembleRegressor node,
// laid out as skl2onnx lays it out) send every row to the same leaf.
//
// Each feature is sorted once per fit; a tree is grown depth first on
// per-feature index arrays that are partitioned stably at each split, so a
// node costs time linear in its rows. Trees are trained one after another
// (the search runs fits in parallel), the context is checked between trees,
// and everything is deterministic for a seed.
package tree
