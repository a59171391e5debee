// Package evaluate measures how well model versions do, on the agent, from
// two sources of labels:
//
//   - live feedback: a sampled request's prediction is kept in a Store under
//     its request id; when a label for that id arrives (ParseFeedback), the
//     prediction is taken back out and the pair is added to an Evaluator,
//     which keeps windowed metrics per (model, version) for the telemetry
//     gauge;
//   - a golden set: labeled rows shipped inside a version directory
//     (LoadGoldenSet), run through the model before it serves
//     (GoldenSet.Evaluate); Gate compares the result with the serving
//     version's and decides whether the version may serve.
//
// # Metrics
//
// Classification: accuracy; precision, recall and F1 per class and macro
// averaged (scikit-learn semantics: the macro average is the unweighted mean
// over the classes that occur in the labels or the predictions, and a ratio
// with a zero denominator is 0); log loss and ROC AUC when the model outputs
// probabilities. Regression: MSE, MAE and R². The names are those of
// manifest.Metrics: accuracy, precision, recall, f1, log_loss, auc, mse,
// mae, r2. A metric that is undefined on the data (R² of constant labels, AUC
// without both positives and negatives) is omitted from Result.Metrics, never
// reported as NaN or 0.
//
// # Class labels
//
// Classes are compared as strings. A model's classes are its label output's
// values (integers written in decimal, BYTES as they are, BOOL as "1"/"0") or
// the column labels of its probability output (runtime.TensorSpec.Classes, or
// "0".."C-1" when the model does not name them). Labels from feedback and
// golden sets are converted to the same form: integers (and integral numbers
// such as 2.0) in decimal, booleans as "1" and "0", strings as they are.
//
// Nothing in this package does I/O except LoadGoldenSet, which reads one
// file. Store and Evaluator are safe for concurrent use; everything else is a
// pure function or an immutable value.
package evaluate
