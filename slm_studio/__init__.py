"""SLM Studio: point-and-click knowledge distillation on your own workstation."""

import os

__version__ = "0.1.0"

# Offline by construction: no stage may reach a model hub. Set before transformers is imported anywhere, and
# forced: a shell that exports HF_HUB_OFFLINE=0 does not switch the guarantee off.
for _switch in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ[_switch] = "1"
os.environ["USE_HUB_KERNELS"] = "0"  # transformers would otherwise look for layer kernels published on the Hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
