"""The strategies a config group's `_target_` builds: taggers, clusterers, scorers and selectors.

Each family is a small protocol in its module; the stages (tacos/stages) are thin glue that read inputs, call the
configured strategy and write outputs. Adding a strategy = one class + one YAML file under conf/<group>/.
"""
