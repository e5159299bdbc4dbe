"""``import minigen`` (issues 10.16, 10.17): every subpackage is reachable from it, loaded on
first use (so the import stays light), and a folder named ``minigen`` in the current directory
does not shadow the installed package (the src layout). Each check runs in a fresh interpreter."""
import os
import subprocess
import sys

import pytest

import minigen


def run_python(code, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_subpackages_are_reachable_from_import_minigen_and_imported_lazily():
    out = run_python(
        "import sys, minigen\n"
        "print(sorted(m for m in ('minigen.models', 'minigen.data', 'minigen.flows', "
        "'minigen.distributions', 'scipy') if m in sys.modules))\n"
        "assert minigen.models.VAE.__name__ == 'VAE'\n"
        "assert minigen.data.load_digits is not None\n"
        "assert minigen.nn.Linear and minigen.optim.Adam and minigen.distributions.Normal\n"
        "assert minigen.utils.save_image_grid and minigen.gradcheck and minigen.load_model\n"
        "print('minigen.models' in sys.modules)\n")
    assert out.split("\n")[:2] == ["[]", "True"]


def test_every_subpackage_folder_is_an_attribute():
    root = os.path.dirname(minigen.__file__)
    for name in sorted(os.listdir(root)):
        if os.path.isfile(os.path.join(root, name, "__init__.py")):
            assert getattr(minigen, name).__name__ == f"minigen.{name}"
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        minigen.nonexistent


def test_a_folder_named_minigen_in_the_working_directory_does_not_shadow_the_package(tmp_path):
    (tmp_path / "minigen").mkdir()  # as when running from the folder that holds the clone
    out = run_python("import minigen; print(minigen.gradcheck.__name__, minigen.__file__)", cwd=tmp_path)
    name, path = out.split()
    assert name == "gradcheck" and not path.startswith(str(tmp_path))
