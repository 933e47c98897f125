"""Callback "old-plugin-log": appends the step and losses to old_plugin.log in the run directory.

Each line holds the losses' means over the steps since the previous line (ganframe.IntervalMeans),
as the progress line and metrics.csv do: the ``logs`` Keras passes are running means since the
training call began, which say little about the latest steps.
"""

from pydantic import Field

from ganframe import CallbackContext, IntervalMeans, Options


class LogOptions(Options):
    every: int = Field(100, gt=0, description="steps between log lines")


def build_log(context: CallbackContext, options: LogOptions):
    import keras  # inside the factory: listing plugins stays fast (no TensorFlow)

    class StepLog(keras.callbacks.Callback):
        last_step = 0

        def on_train_begin(self, logs=None):
            self.last_step = self.model.global_step  # self.model is the engine's ganframe.GAN
            self.means = IntervalMeans(self.model)

        def on_train_batch_end(self, batch, logs=None):
            step = self.model.global_step
            if step // options.every > self.last_step // options.every:
                values = " ".join(f"{key}={value:.4f}" for key, value in sorted(self.means.take().items()))
                with open(context.run_dir / "old_plugin.log", "a") as handle:
                    handle.write(f"step={step} {values}\n")
            self.last_step = step

    return StepLog()
