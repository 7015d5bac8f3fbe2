// Package trainer runs training: a Recipe (read from YAML) names the model,
// the data, the adapter or full fine-tuning, the optimiser and schedule,
// and the run's batch sizes, evaluation and checkpoints; Run carries it out.
package trainer
