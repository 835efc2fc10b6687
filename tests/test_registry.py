"""The name → factory registry: registration, lookup errors that list valid names, lazy imports."""

from __future__ import annotations

import sys

import pytest

from ner_ray.registry import Registry


def test_register_as_decorator_and_directly():
    families = Registry("model family")

    @families.register("token_cls")
    def build_token_cls():
        return "token_cls model"

    families.register("crf", dict)
    assert families.get("token_cls") is build_token_cls
    assert families.get("token_cls")() == "token_cls model"
    assert families.get("crf") is dict
    assert families.names() == ["crf", "token_cls"]
    assert list(families) == ["crf", "token_cls"]
    assert "crf" in families and "span_gen" not in families
    assert len(families) == 2


def test_unknown_name_lists_valid_names_and_the_nearest():
    engines = Registry("engine")
    engines.register("vllm", object)
    engines.register("hf", object)
    with pytest.raises(ValueError) as err:
        engines.get("vlm")
    assert str(err.value) == "unknown engine 'vlm'; did you mean 'vllm'? (valid: hf, vllm)"
    with pytest.raises(ValueError, match=r"^unknown engine 'onnx'; valid: hf, vllm$"):
        engines.get("onnx")


def test_duplicate_and_malformed_registrations_are_errors():
    corpora = Registry("corpus")
    corpora.register("demo", object)
    with pytest.raises(ValueError, match="corpus 'demo' is already registered"):
        corpora.register("demo", dict)
    with pytest.raises(ValueError, match="must be given as 'module:attr'"):
        corpora.register("bc5cdr", "ner_ray.data.corpora")
    with pytest.raises(ValueError, match="non-empty strings"):
        corpora.register("", object)


def test_lazy_entry_is_imported_only_on_get(tmp_path, monkeypatch):
    (tmp_path / "lazy_family_mod.py").write_text("LOADED = True\ndef build():\n    return 'built'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_family_mod", raising=False)
    families = Registry("model family")
    families.register("lazy", "lazy_family_mod:build")
    assert "lazy_family_mod" not in sys.modules
    assert not families.is_loaded("lazy")
    build = families.get("lazy")
    assert build() == "built"
    assert "lazy_family_mod" in sys.modules
    assert families.is_loaded("lazy")
    assert families.get("lazy") is build


def test_lazy_entry_with_a_missing_module_names_the_extra():
    engines = Registry("engine")
    engines.register("vllm", "ner_ray_no_such_module_xyz:Engine", extra="gpu")
    with pytest.raises(ImportError) as err:
        engines.get("vllm")
    assert str(err.value) == (
        "engine 'vllm' needs the module 'ner_ray_no_such_module_xyz', which is not installed; "
        "install it with pip install 'ner_ray[gpu]'"
    )


def test_lazy_entry_with_a_missing_attribute_says_where():
    families = Registry("model family")
    families.register("ghost", "ner_ray.errors:NoSuchThing")
    with pytest.raises(ImportError, match="model family 'ghost': module 'ner_ray.errors' has no attribute 'NoSuchThing'"):
        families.get("ghost")
