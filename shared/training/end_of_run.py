"""The end of an Engine run: the best/ and last/ exports, the test split scored once with best/, results.json,
the reports and figures, and the memory released before them."""
from __future__ import annotations

import dataclasses
import gc
from contextlib import nullcontext

from shared.evaluation.scoring import split_scalars
from shared.evaluation.tracking import plot_metric_figures, plot_run, write_results
from shared.serving.hub import push_folder
from shared.training.checkpoint import add_test_metrics, export_model, training_info


class EndOfRun:
    """Engine's exports and finish(). A mixin: it reads the run's state that Engine.setup() and train() build
    (accelerator, state, model, EMA, loaders, metric spec, timings) and scores through Engine._score."""

    def _export(self, name: str, metrics: dict) -> None:
        acc = self.accelerator
        self._stop_if_weights_diverged()
        acc.wait_for_everyone()
        if self.is_main:
            model = self._plain_model()
            info = training_info(self.task.name, self.task.pipeline_tag, self.cfg, self.data_files, self.labels,
                                 split_scalars(metrics)[0], self.state.step)
            with self.ema.swapped_in(model) if self.ema else nullcontext():
                export_model(model, self.processor, self.run_dir / name, info)
        acc.wait_for_everyone()

    def _test_best(self) -> dict:
        """Metrics of the model saved in best/ (EMA weights there when enabled) on the test split, scored once."""
        acc, st = self.accelerator, self.state
        # the task builds it from best/, as predict.py does: its build_model sets up what its eval_step uses beside
        # the weights (translation's tokenizer); best/ holds LoRA merged, so no adapters are added
        saved = type(self.task)(dataclasses.replace(self.cfg, model_name_or_path=str(self.run_dir / "best")))
        model = saved.build_model(self.labels, self.processor)
        self.model, self.ema = acc.prepare_model(model, evaluation_mode=True), None  # best/ has the EMA weights
        metrics, self.test_batches, _ = self._score(self.test_loader, self.raw_test, desc="test")
        self.logger.log({f"test/{k}": v for k, v in split_scalars(metrics)[0].items()}, st.step, st.epoch)
        return metrics

    def finish(self) -> dict:
        """The last evaluation and exports, the test split, results.json and the reports; the results returned."""
        cfg, st, acc = self.cfg, self.state, self.accelerator
        last_metrics = {}
        if cfg.eval_strategy != "no":
            done_step, done_metrics = getattr(self, "last_eval", (None, None))
            last_metrics = done_metrics if done_step == st.step else self._evaluate_and_log()
        self._release_optimizer()  # its state is as large as the weights twice over; exports need neither
        self._export("last", last_metrics)
        if st.best_step is None or cfg.eval_strategy == "no":
            st.best_step, st.best_metrics = st.step, last_metrics
            self._export("best", last_metrics)
        results = self._results(last_metrics)
        test_metrics = self._test_best() if self.test_loader is not None else None
        if test_metrics is not None:
            results.update({f"test_{k}": v for k, v in split_scalars(test_metrics)[0].items()})
        self._release_training_memory()
        if self.is_main:
            self._report(results, last_metrics, test_metrics)
        acc.end_training()
        return results

    def _results(self, last_metrics: dict) -> dict:
        """results.json's eval_* (best model), last_eval_* and run figures (steps, throughput, precision)."""
        st, acc = self.state, self.accelerator
        results = {f"eval_{k}": v for k, v in st.best_metrics.items()}
        results.update({f"last_eval_{k}": v for k, v in split_scalars(last_metrics)[0].items()})
        results.update({"best_step": st.best_step, "global_step": st.step, "main_metric": self.metric_spec.main,
                        "train_runtime": round(self.train_seconds, 3),
                        "train_samples_per_second": round(self.train_samples / max(self.train_seconds, 1e-9), 3),
                        "train_step_samples_per_second": round(
                            self.train_samples / max(self.train_seconds - self.pause_seconds, 1e-9), 3),
                        "eval_samples_per_second": round(getattr(self, "eval_samples_per_second", 0.0), 3),
                        "train_data_wait_fraction": round(
                            self.data_seconds / max(self.train_seconds - self.pause_seconds, 1e-9), 4),
                        "precision": acc.mixed_precision, "num_processes": acc.num_processes})
        return results

    def _report(self, results: dict, last_metrics: dict, test_metrics: dict | None) -> None:
        """Main process: results.json, the figures and reports, the Hub push, and where everything went."""
        cfg, st, main = self.cfg, self.state, self.metric_spec.main
        write_results(self.run_dir, results)
        plot_run(self.run_dir, st.best_metrics, self.labels)
        if last_metrics:
            self.task.eval_report(self.run_dir / "plots", self.last_batches, self.raw_eval, self.labels)
        if test_metrics is not None:
            self._report_test(test_metrics)
        for line in self.data.notes():  # what the task counted while training (boxes dropped by augmentation)
            print(line)
        if cfg.push_to_hub:
            push_folder(self.run_dir / "best", cfg.hub_model_id)
        print(f"\nbest model   {self.run_dir / 'best'}  (step {st.best_step}, {main} "
              f"{st.best_metrics.get(main, float('nan')):.4f})\n"
              f"last model   {self.run_dir / 'last'}\nmetrics      {self.run_dir / 'results.json'}, "
              f"{self.run_dir / 'metrics.jsonl'}\nplots        {self.run_dir / 'plots'}")
        if test_metrics is not None:
            print(f"test         {self.run_dir / 'test_results.json'}  (best model, {main} "
                  f"{test_metrics.get(main, float('nan')):.4f})")

    def _report_test(self, metrics: dict) -> None:
        """test_results.json, the test metrics in best/'s training_info.json and card, and the test figures."""
        test = {f"test_{k}": v for k, v in metrics.items()}
        write_results(self.run_dir, {**test, "test_model_step": self.state.best_step}, "test_results.json")
        add_test_metrics(self.run_dir / "best", split_scalars(metrics)[0])
        out = self.run_dir / "test" / "plots"  # QA writes its predictions.json beside this plots folder
        out.mkdir(parents=True, exist_ok=True)
        plot_metric_figures(metrics, self.labels, out)
        self.task.eval_report(out, self.test_batches, self.raw_test, self.labels)

    def _release_optimizer(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.accelerator.free_memory()  # forgets the prepared objects; self.model stays usable
        self.accelerator._custom_objects.clear()  # the checkpointed scheduler still points at the optimizer
        self.optimizer = self.scheduler = None
        gc.collect()

    def _release_training_memory(self) -> None:
        """Drop the model and optimizer state before plotting, so plotting adds nothing to peak memory."""
        self.accelerator.free_memory()
        self.model = self.optimizer = self.scheduler = self.ema = self.objective = None  # objective: the teacher
        gc.collect()
