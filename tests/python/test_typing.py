"""The package's type information: the stubs the wheel ships are the ones scripts/gen-stubs
makes from the command line's arguments (so no option can be missing from them), and mypy
--strict accepts a typed use of the API and refuses wrong calls."""

import pathlib
import subprocess
import sys

import ddbsnap

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_stubs_name_every_option_of_the_command_line():
    made = subprocess.run(
        [sys.executable, str(ROOT / "scripts/gen-stubs")], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    shipped = pathlib.Path(ddbsnap.__file__).with_name("__init__.pyi").read_text()
    assert pathlib.Path(ddbsnap.__file__).with_name("py.typed").exists()
    assert made.stdout == shipped, (
        "python/ddbsnap/__init__.pyi is not what the command line's options make: run "
        ".tools/wheel-venv/bin/python scripts/gen-stubs > python/ddbsnap/__init__.pyi"
    )
    # Spot checks of what the generator reads: a default, a choice, a list.
    assert "    read_fraction: float = 0.5,\n" in shipped
    assert '    on_gap: Literal["fail", "refresh", "force"] = "fail",\n' in shipped
    assert "    columns: Sequence[str] | None = None,\n" in shipped


def mypy(path):
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(path)],
        capture_output=True,
        text=True,
    )


def test_mypy_strict_accepts_the_typed_example():
    checked = mypy(ROOT / "tests/python/typed/example.py")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_mypy_strict_refuses_wrong_calls(tmp_path):
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "import ddbsnap\n"
        'ddbsnap.snapshot("orders", "./orders", read_fraction="a quarter")\n'
        'ddbsnap.sync("orders", "s3://lake/orders", on_gap="sometimes")\n'
        'ddbsnap.snapshot("orders", "./orders", read_fractoin=0.25)\n'
        'n: str = ddbsnap.snapshot("orders", "./orders")["items"]\n'
    )
    checked = mypy(wrong)
    assert checked.returncode == 1, checked.stdout
    for line, code in [(2, "arg-type"), (3, "arg-type"), (4, "call-arg"), (5, "assignment")]:
        assert f"wrong.py:{line}: error:" in checked.stdout and f"[{code}]" in checked.stdout, (
            checked.stdout
        )
