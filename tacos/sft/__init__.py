"""SFT of a base model on an exported subset with LLaMA-Factory + DeepSpeed ZeRO-3 (what the `train` stage runs).

spec.py      the `model` (ModelSpec) and `train` (TrainConfig) config groups
recipe.py    the LLaMA-Factory YAML, the DeepSpeed JSON and the dataset_info.json entry (pure functions)
preflight.py GPU check, model availability (offline hub cache / local folder / the tiny model), dataset lookup
validate.py  LLaMA-Factory's and DeepSpeed's own parsers on the generated files, in a child process
launch.py    `llamafactory-cli train` with the torchrun settings and W&B environment, streamed to our log
guard.py     what llamafactory-cli runs under: every training process dies with us, even after a kill -9
outputs.py   train.output_dir: checkpoints (which one to resume from), the recipe marker, losses and results
forecast.py  the dry run's GPU-hour forecast (tokens of the subset)
tiny_model.py  the tiny Llama model built locally (CPU tests)
The package stays import-light: no torch / transformers / llamafactory at import time.
"""
