import pytest
import torch

from slm_studio.errors import UserError
from slm_studio.models import loading, sources
from tests.conftest import BUNDLED, small_gguf


def test_bundled_teacher_is_found_and_described():
    source = sources.resolve(BUNDLED.lower())
    info = sources.describe(source)
    assert (info.architecture, info.layers, info.vocab_size) == ("llama", 30, 49152)
    assert 130e6 < info.parameters < 140e6
    assert info.file_bytes > 50e6 and info.context_length == 8192


def test_hf_folder_is_described(tiny_teacher):
    info = sources.describe(sources.resolve(str(tiny_teacher)))
    assert info.kind == "hf" and info.layers == 4 and info.vocab_size == 49152
    assert info.parameters > 49152 * 32


def test_unknown_teacher_lists_the_bundled_ones():
    with pytest.raises(UserError, match="unknown teacher 'nope'.*SmolLM2-135M-Instruct"):
        sources.resolve("nope")
    with pytest.raises(UserError, match="not found"):
        sources.resolve("/no/such/model.gguf")


@pytest.mark.parametrize("content", [b"", b"GGUF" + b"\xff" * 40, b"this is not a model at all" * 100])
def test_corrupt_gguf_gives_a_clear_message(tmp_path, content):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    with pytest.raises(UserError, match="not a readable GGUF"):
        sources.describe(sources.resolve(str(bad)))


def test_truncated_gguf_gives_a_clear_message(tmp_path):
    real = sources.resolve(BUNDLED).path
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(real.read_bytes()[:5_000_000])
    with pytest.raises(UserError, match="not a readable GGUF"):
        sources.describe(sources.resolve(str(cut)))


@pytest.mark.slow
def test_real_teacher_loads_from_cache_and_answers(teacher_folder):
    """The cached dequantized teacher is reused and still knows its facts."""
    cached_at = (teacher_folder / "model.safetensors").stat().st_mtime_ns
    model, tokenizer, folder = loading.load(sources.resolve(BUNDLED))
    assert folder == teacher_folder  # the second load reuses the cache instead of dequantizing again
    assert (folder / "model.safetensors").stat().st_mtime_ns == cached_at
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                         tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1]:])


def test_student_size_estimate_matches_a_derived_student(tiny_teacher):
    from slm_studio.models.loading import load_model
    from slm_studio.models.student import StudentPlan, derive_student, parameter_count

    info = sources.describe(sources.resolve(str(tiny_teacher)))
    student = derive_student(load_model(tiny_teacher), StudentPlan([0, 3], mlp_ratio=0.5))
    assert info.student_parameters(2, 0.5) == parameter_count(student)
    assert sources.describe(sources.resolve(BUNDLED)).student_parameters(15) == pytest.approx(81.4e6, rel=0.01)


def test_scan_reads_asmall_gguf(tmp_path):
    info = sources.describe(sources.resolve(str(small_gguf(tmp_path / "small.gguf"))))
    assert (info.architecture, info.layers, info.vocab_size, info.parameters) == ("llama", 1, 3, 12)


def test_a_gguf_claiming_huge_tensors_is_refused_before_llama_cpp(tmp_path):
    import struct

    path = small_gguf(tmp_path / "huge.gguf")
    data = bytearray(path.read_bytes())
    name = b"token_embd.weight"
    dims_at = data.index(name) + len(name) + 4  # after the name and its n_dims
    data[dims_at:dims_at + 8] = struct.pack("<Q", 2**40)
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="past the end of the file"):
        sources.describe(sources.resolve(str(path)))
    from slm_studio.llama import open_llama

    with pytest.raises(UserError, match="not a readable GGUF"):
        open_llama(path)


def test_a_gguf_header_claiming_billions_of_fields_is_refused(tmp_path):
    import struct

    path = small_gguf(tmp_path / "many.gguf")
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack("<Q", 2**50)  # kv_count
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="more than the file can hold"):
        sources.describe(sources.resolve(str(path)))
