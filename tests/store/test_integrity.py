"""Integrity checks of every file hessdyn reads back (issue 14): checkpoints, eigenvector files, per-step
records, tables, run.json, and the mode new files get."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from hessdyn.config.errors import HessdynError
from hessdyn.io import atomic_torch_save, atomic_write_text
from hessdyn.store import AnalysisDir, DamagedFile, RunDir, load_checkpoint, table
from hessdyn.store.integrity import table_problem, table_record, zip_problem
from tests.faults.corrupt import cut, flip_pickle_bytes, flip_tensor_bytes, xor_bytes


def _checkpoint(run: RunDir, step: int = 5, config_hash: str = "abc"):
    torch.manual_seed(step)
    model = {"0.weight": torch.randn(64, 32), "0.bias": torch.randn(64)}
    return run.save_checkpoint({"step": step, "config_hash": config_hash, "model": model}), model


def test_checkpoint_with_flipped_bits_in_a_tensor_is_detected_by_its_crc(tmp_path):
    """Defect 3: 4 bytes XORed inside a tensor record loaded silently (λmax 2.4e37 instead of 13.4)."""
    path, model = _checkpoint(RunDir(tmp_path))
    assert zip_problem(path) is None
    assert torch.equal(load_checkpoint(path, config_hash="abc")["model"]["0.weight"], model["0.weight"])
    member = flip_tensor_bytes(path)
    assert zip_problem(path) == f"CRC-32 mismatch in its member {member}"
    with pytest.raises(DamagedFile) as info:
        load_checkpoint(path)
    line = str(info.value)
    assert "\n" not in line and str(path) in line and "CRC-32" in line and "restore it" in line
    # what torch alone would have returned: other numbers, no complaint
    loaded = torch.load(path, weights_only=True)["model"]["0.weight"]
    assert not torch.equal(loaded, model["0.weight"])


@pytest.mark.parametrize(
    "damage",
    ["pickle_bytes", "cut_in_half", "cut_tail", "zeroed_header"],
)
def test_every_damaged_checkpoint_is_one_line_naming_it(tmp_path, damage):
    """Flipped pickle bytes used to give an unpickler traceback; a cut file a zip error."""
    path, _ = _checkpoint(RunDir(tmp_path))
    if damage == "pickle_bytes":
        flip_pickle_bytes(path)
    elif damage == "cut_in_half":
        cut(path, 0.5)
    elif damage == "cut_tail":
        cut(path, path.stat().st_size - 7)
    else:
        xor_bytes(path, 0, 30, mask=0xFF)
    with pytest.raises(DamagedFile) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_checkpoint_keys_step_and_config_are_checked(tmp_path):
    run = RunDir(tmp_path)
    path, _ = _checkpoint(run, step=5, config_hash="abc")
    with pytest.raises(HessdynError, match="written by another config"):
        load_checkpoint(path, config_hash="xyz")
    with pytest.raises(DamagedFile, match="no optimizer"):
        load_checkpoint(path, keys=("model", "optimizer"))
    os.replace(path, run.checkpoint_path(6))  # a file renamed or copied over another step
    with pytest.raises(DamagedFile, match="holds step 5"):
        load_checkpoint(run.checkpoint_path(6))


def _vectors(k: int = 3, p: int = 50) -> dict:
    q, _ = torch.linalg.qr(torch.randn(p, k, dtype=torch.float64))
    return {
        "step": 1,
        "eigenvalues": torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64),
        "eigenvectors": q.T.to(torch.float32),
        "bottom_eigenvalues": torch.empty(0),
        "bottom_eigenvectors": torch.empty(0),
        "param_names": ["w"],
    }


@pytest.mark.parametrize(
    "malform",
    ["wrong_length", "non_finite", "one_dimensional", "count_mismatch", "not_a_dict", "flipped", "cut"],
)
def test_malformed_eigvecs_file_is_damaged_not_a_traceback(tmp_path, malform):
    adir = AnalysisDir(tmp_path)
    payload = _vectors()
    adir.save_vectors(1, payload)
    assert torch.equal(adir.load_vectors(1, num_params=50)["eigenvectors"], payload["eigenvectors"])
    if malform == "wrong_length":
        payload["eigenvectors"] = payload["eigenvectors"][:, :40]
    elif malform == "non_finite":
        payload["eigenvectors"][1, 3] = float("nan")
    elif malform == "one_dimensional":
        payload["eigenvectors"] = payload["eigenvectors"].reshape(-1)
    elif malform == "count_mismatch":
        payload["eigenvalues"] = payload["eigenvalues"][:2]
    elif malform == "not_a_dict":
        payload = [payload["eigenvectors"]]
    if malform in ("flipped", "cut"):
        path = adir.eigvecs_path(1)
        flip_tensor_bytes(path) if malform == "flipped" else cut(path, 0.6)
    else:
        atomic_torch_save(adir.eigvecs_path(1), payload)
    with pytest.raises(DamagedFile) as info:
        adir.load_vectors(1, num_params=50)
    assert "\n" not in str(info.value) and "analyzed again" in str(info.value)
    adir.write_step_record(1, {"summary": [{"step": 1}]})
    assert adir.step_problem(1, 50) is not None


def test_step_record_changed_after_writing_fails_its_checksum(tmp_path):
    adir = AnalysisDir(tmp_path)
    adir.write_step_record(3, {"summary": [{"step": 3, "lambda_max": 13.4}]})
    assert adir.read_step_record(3) == {"summary": [{"step": 3, "lambda_max": 13.4}]}
    path = adir.step_record_path(3)
    path.write_text(path.read_text().replace("13.4", "93.4"))  # a flipped digit: still valid JSON
    with pytest.raises(DamagedFile, match="checksum"):
        adir.read_step_record(3)
    path.write_text('{"summary": [{"st')
    with pytest.raises(DamagedFile, match="not valid JSON"):
        adir.read_step_record(3)


def test_damaged_run_json_and_analysis_json_are_one_line(tmp_path):
    run = RunDir(tmp_path)
    run.write_record({"status": "completed", "config_hash": "abc"})
    cut(run.run_json, 0.5)
    with pytest.raises(DamagedFile, match=r"run\.json is damaged \(not valid JSON.*move it away"):
        run.read_record()
    run.run_json.write_text(json.dumps({"config_hash": "abc"}))
    with pytest.raises(DamagedFile, match="no status"):
        run.status()
    adir = run.analysis()
    adir.write_meta({"status": "complete"})
    adir.meta_path.write_text("[1, 2")
    with pytest.raises(DamagedFile, match="force=true"):
        adir.read_meta()


def test_tables_are_checked_for_header_cut_lines_rows_and_content(tmp_path):
    spectrum = table("spectrum")
    path = tmp_path / "spectrum.csv"
    lines = ["step,which,rank,eigenvalue,converged"] + [f"{s},top,1,{s + 0.5},True" for s in range(5)]
    atomic_write_text(path, "\n".join(lines) + "\n")
    recorded = table_record(path)
    assert recorded["rows"] == 5
    assert table_problem(path, spectrum.names, recorded) is None
    text = path.read_text()
    cases = {
        "cut": (text[:-6], "last line is cut off"),  # the row that read as "did not converge"
        "row lost": ("\n".join(lines[:-1]) + "\n", "4 rows, analysis.json records 5"),
        "changed": (text.replace("2.5", "7.5"), "content differs"),
        "header": (text.replace("eigenvalue", "eigen_value"), "unregistered columns"),
        "order": (text.replace("step,which", "which,step"), "order"),
        "short row": (text.replace("3,top,1,3.5,True", "3,top,1"), "row 4 has 3 fields"),
    }
    for name, (damaged, problem) in cases.items():
        path.write_text(damaged)
        found = table_problem(path, spectrum.names, recorded)
        assert found is not None and problem in found, (name, found)
    path.unlink()
    assert table_problem(path, spectrum.names, recorded) == "missing"


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_are_created_with_the_users_umask(tmp_path, umask):
    """Files used to be created 0600 (mkstemp) whatever the umask; a report's 0644."""
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        atomic_torch_save(tmp_path / "b.pt", {"x": torch.zeros(1)})
        AnalysisDir(tmp_path).write_table("summary", [{"step": 0, "lambda_max": 1.0}])
    finally:
        os.umask(old)
    for name in ("a.json", "b.pt", "analysis/summary.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name
