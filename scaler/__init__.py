"""scaler: declarative scaling-law experiments for synthetic data in LLM math reasoning.

Importing this package is cheap (no torch, transformers or trl): the orchestrator runs on login
nodes and in the CLI; the heavy libraries are loaded only inside the stages that need them.
"""

__version__ = "0.1.0"
