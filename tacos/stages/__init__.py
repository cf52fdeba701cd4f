"""Pipeline stages: one module each (see tacos/pipeline.py for the interface)."""
