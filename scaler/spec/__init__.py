"""The experiment spec: its models (`schema`), the rules across their fields (`checks`) and how a
YAML file becomes one (`load`)."""

from scaler.spec.load import load_spec
from scaler.spec.schema import Spec

__all__ = ["Spec", "load_spec"]
