// Package linear holds the optimizer's linear model families:
// logistic_regression (multinomial, L2, fitted with L-BFGS),
// linear_regression (least squares) and ridge. Every family standardises
// the features from its training rows (as scikit-learn's
// Pipeline(StandardScaler, ...) does) and its models export as skl2onnx
// writes such a pipeline: an ai.onnx.ml Scaler followed by a
// LinearClassifier or a LinearRegressor.
//
// The families register themselves with package learn in init; import the
// package for its side effect to make them known.
package linear
