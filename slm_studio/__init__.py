"""SLM Studio: point-and-click knowledge distillation on your own workstation."""

import os

__version__ = "0.1.0"

# Offline by construction: no stage may reach a model hub. Set before transformers is imported anywhere.
for _switch in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ.setdefault(_switch, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
