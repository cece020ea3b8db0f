"""Every shell command in README.md and docs/*.md runs, as written, against the installed CLI.

Each Markdown file's ```bash / ```sh / ```shell / ```console blocks run in order, one command at a
time, in one temporary folder per file (so a later block can use what an earlier one wrote), with
``bash -e -o pipefail``; every command must exit 0. ``console`` blocks run their ``$ `` lines only.
A block that cannot run in CI is marked on the line right before it, with the reason:

    <!-- not-run: needs a GPU -->

and counted (``test_not_run_blocks_are_few_and_explained``). A failure names the file, the line of
the command and its output.

Stated substitutions (the docs speak of a user's big scene and model; CI runs small ones):

| placeholder in the docs              | what the runner puts there                                               |
| ------------------------------------ | ------------------------------------------------------------------------ |
| ``examples/``                        | the repository's ``examples/``, with ``examples/scene/*.tif`` cropped to 256 x 256 |
| ``bench/``                           | the repository's ``bench/`` (a link)                                     |
| ``ortho.tif``, ``dsm.tif``, ``huge.tif``, ``huge_dsm.tif``, ``t1.tif``, ``t2.tif`` | 256 x 256 crops of ``examples/scene`` (ortho, dsm; t2: ortho_t2) |
| ``campaign/*.tif`` + ``dsm/*.tif``   | two 256 x 256 crops of ``examples/scene``, side by side on one grid       |
| ``2021/*.tif``, ``2023/*.tif``       | those crops at epoch 1 and epoch 2 (``ortho_t2``)                        |
| ``scenes.txt``, ``t1.txt``, ``t2.txt`` | file lists of those crops                                              |
| ``model.pt``, ``run/best.pt``        | the shipped demo model (``rsmamba/data/demo_model.pt``)                  |
| ``change.pt``                        | the shipped demo change model                                            |
| ``rsmamba synth ... --size N``       | ``--size 512`` for N > 512 (sizes, not behaviour)                        |
| ``rsmamba train ...``                | ``--set train.epochs=1`` appended (one epoch instead of 40)              |
| ``${SLURM_ARRAY_TASK_ID}``, ``${JOB_COMPLETION_INDEX}`` | 0 and 1 (environment variables)                       |
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"bash", "sh", "shell", "console"}
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>[^>]*?)\s*-->")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
TIMEOUT_S = 600
CROP = 256  # crops of the example scene: small, and a size the models' strides divide
SYNTH_MAX = 512  # synthetic scenes: enough chips for train/val splits


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    lines: list[tuple[int, str]]  # (1-based line, text)
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass
class Command:
    line: int
    text: str


def parse_blocks(path: Path) -> list[Block]:
    """Fenced shell blocks of a Markdown file, with the not-run marker that precedes each (if any)."""
    blocks: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m["fence"], m["lang"].lower(), i
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append((i + 1, lines[i][len(m["indent"]):] if lines[i].startswith(m["indent"]) else lines[i]))
            i += 1
        i += 1
        if lang not in SHELLS:
            continue
        prev = start - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        marker = NOT_RUN.search(lines[prev]) if prev >= 0 else None
        blocks.append(Block(path, start + 1, lang, body, marker["reason"] if marker else None))
    return blocks


def commands(block: Block) -> list[Command]:
    """One command per logical line: ``\\`` continuations joined, comments and blank lines dropped."""
    out: list[Command] = []
    pending: Command | None = None
    for number, text in block.lines:
        if block.lang == "console":
            if pending is None and not text.startswith("$ "):
                continue  # output shown in the docs
            text = text[2:] if pending is None else text
        if pending is None:
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            pending = Command(number, "")
        piece = text if not pending.text else text.strip()
        pending.text += piece.rstrip().rstrip("\\").rstrip() + " " if text.rstrip().endswith("\\") else piece
        if not text.rstrip().endswith("\\"):
            out.append(pending)
            pending = None
    if pending is not None:
        out.append(pending)
    return out


def substitute(command: str) -> str:
    """The size substitutions of the module docstring (placeholder files are laid out by ``workspace``)."""
    def smaller(m: re.Match) -> str:
        return f"--size {min(int(m[1]), SYNTH_MAX)}"

    if re.search(r"\brsmamba synth\b", command):
        command = re.sub(r"--size (\d+)", smaller, command)
    if re.search(r"\brsmamba train\b", command):
        code, sep, comment = command.partition(" #")  # before a trailing comment
        command = code.rstrip() + " --set train.epochs=1" + (sep + comment if sep else "")
    return command


def _crop(src: Path, dst: Path, col: int, row: int, size: int = CROP) -> Path:
    import rasterio
    from rasterio.windows import Window

    window = Window(col, row, size, size)
    with rasterio.open(src) as ds:
        profile = ds.profile.copy()
        profile.update(width=size, height=size, transform=ds.window_transform(window))
        data = ds.read(window=window)
        tags = ds.tags()
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
        out.update_tags(**tags)
    return dst


def workspace(folder: Path) -> None:
    """The placeholder files of the substitution table."""
    scene = ROOT / "examples" / "scene"
    (folder / "bench").symlink_to(ROOT / "bench")
    (folder / "examples").mkdir()
    for item in (ROOT / "examples").iterdir():
        if item.name != "scene":
            (folder / "examples" / item.name).symlink_to(item)
    for item in scene.iterdir():
        if item.suffix == ".tif":
            _crop(item, folder / "examples" / "scene" / item.name, 0, 0)
        else:
            (folder / "examples" / "scene" / item.name).symlink_to(item)
    for name, src in (("ortho.tif", "ortho.tif"), ("dsm.tif", "dsm.tif"), ("huge.tif", "ortho.tif"),
                      ("huge_dsm.tif", "dsm.tif"), ("t1.tif", "ortho.tif"), ("t2.tif", "ortho_t2.tif")):
        _crop(scene / src, folder / name, 0, 0)
    for stem, col in (("a", 0), ("b", CROP)):
        _crop(scene / "ortho.tif", folder / "campaign" / f"{stem}.tif", col, CROP)
        _crop(scene / "dsm.tif", folder / "dsm" / f"{stem}.tif", col, CROP)
        _crop(scene / "ortho.tif", folder / "2021" / f"{stem}.tif", col, CROP)
        _crop(scene / "ortho_t2.tif", folder / "2023" / f"{stem}.tif", col, CROP)
    (folder / "scenes.txt").write_text("campaign/a.tif\ncampaign/b.tif\n")
    (folder / "t1.txt").write_text("2021/a.tif\n2021/b.tif\n")
    (folder / "t2.txt").write_text("2023/a.tif\n2023/b.tif\n")
    data = ROOT / "rsmamba" / "data"
    (folder / "run").mkdir()
    for dst, src in (("model.pt", "demo_model.pt"), ("run/best.pt", "demo_model.pt"),
                     ("change.pt", "demo_change_model.pt")):
        shutil.copy(data / src, folder / dst)


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # the venv's console scripts: rsmamba, torchrun
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "SLURM_ARRAY_TASK_ID": "0",
            "JOB_COMPLETION_INDEX": "1", "PYTHONPATH": str(ROOT), "TERM": "dumb"}


ALL_BLOCKS = [b for path in DOCS for b in parse_blocks(path)]


@pytest.mark.slow
@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documented_commands_run(path: Path, tmp_path: Path) -> None:
    blocks = [b for b in parse_blocks(path) if b.not_run is None]
    if not blocks:
        return  # a file without runnable shell blocks has nothing to check
    assert shutil.which("rsmamba", path=_env()["PATH"]), "the rsmamba console script is not installed"
    workspace(tmp_path)
    env = _env()
    for block in blocks:
        for cmd in commands(block):
            text = substitute(cmd.text)
            proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", text], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                err = re.sub(r"[^\n]*\r", "", proc.stderr)  # progress bars redraw with \r: keep the last state
                pytest.fail(f"{path.relative_to(ROOT)}:{cmd.line} (block at line {block.line}) exited "
                            f"{proc.returncode}:\n  $ {text}\n--- stderr ---\n{err[-3000:]}"
                            f"\n--- stdout ---\n{proc.stdout[-1500:]}", pytrace=False)


def test_not_run_blocks_are_few_and_explained() -> None:
    skipped = [b for b in ALL_BLOCKS if b.not_run is not None]
    run = [b for b in ALL_BLOCKS if b.not_run is None]
    for block in skipped:
        assert len(block.not_run) >= 10, f"{block.where}: say why the block cannot run in CI"
    assert run and len(skipped) <= len(run), [b.where for b in skipped]
    print(f"{len(run)} blocks run, {len(skipped)} not run: " + "; ".join(f"{b.where} ({b.not_run})" for b in skipped))


def test_parser_finds_commands_lines_and_markers(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text("text\n<!-- not-run: needs a GPU machine -->\n```bash\nrsmamba predict a.tif \\\n  -o b.tif\n```\n"
                  "```console\n$ rsmamba models\nmodel  task\n```\n```yaml\nkey: 1\n```\n")
    (gpu, con) = parse_blocks(md)
    assert gpu.not_run == "needs a GPU machine" and gpu.line == 3 and con.not_run is None
    assert [(c.line, c.text) for c in commands(gpu)] == [(4, "rsmamba predict a.tif -o b.tif")]
    assert [(c.line, c.text) for c in commands(con)] == [(8, "rsmamba models")]
    assert substitute("rsmamba synth -o s --size 1024") == "rsmamba synth -o s --size 512"
    assert substitute("rsmamba train -c x.yaml   # note") == "rsmamba train -c x.yaml --set train.epochs=1 # note"
