"""main.py reads ComfyUI's server flags (the command lines ComfyUI's test harness and scripts use)."""
from __future__ import annotations

from pathlib import Path

import pytest

import main


def parse(argv: list[str]):
    args = main.build_parser().parse_args(["serve", *argv])
    main.apply_base_directory(args, argv)
    return args


def test_directory_flags_are_aliases_of_ours_and_base_directory_fills_the_rest(tmp_path):
    args = parse(["--output-directory", str(tmp_path / "o"), "--base-directory", str(tmp_path / "b"),
                  "--input-dir", str(tmp_path / "i")])
    assert args.output_dir == str(tmp_path / "o") and args.input_dir == str(tmp_path / "i")
    assert args.temp_dir == str(tmp_path / "b" / "temp") and args.user_dir == str(tmp_path / "b" / "user")
    assert args.models_dir == str(tmp_path / "b" / "models")
    assert args.custom_nodes == str(tmp_path / "b" / "custom_nodes")


def test_custom_nodes_entries_of_the_yaml_are_relative_to_its_folder(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "extra.yaml").write_text("testing:\n    custom_nodes: packs\n")
    monkeypatch.chdir(tmp_path)
    args = parse(["--extra-model-paths-config", "conf/extra.yaml", "--custom-nodes", "mine"])
    assert [Path(d) for d in main.custom_node_dirs(args)] == [Path("mine"), tmp_path / "conf" / "packs"]
    args = parse(["--extra-model-paths-config", "conf/extra.yaml", "--disable-all-custom-nodes"])
    assert main.custom_node_dirs(args) == []


@pytest.mark.parametrize("argv, options", [
    ([], {}), (["--cache-classic"], {"cache_mode": "classic"}), (["--cache-none"], {"cache_mode": "none"}),
    (["--cache-lru", "0"], {"cache_mode": "lru", "cache_lru_size": 0}),
    (["--cache-lru", "100"], {"cache_mode": "lru", "cache_lru_size": 100})])
def test_cache_flags_choose_the_executor_cache_mode(argv, options):
    assert main.cache_options(parse(argv)) == options


def test_cache_flags_exclude_each_other_and_listen_alone_means_every_interface():
    with pytest.raises(SystemExit):
        parse(["--cache-none", "--cache-lru", "3"])
    assert parse(["--listen"]).listen == "0.0.0.0"
    args = parse(["--listen", "127.0.0.1", "--port", "8190", "--cpu", "--preview-method", "auto"])
    assert (args.listen, args.port, args.cpu, args.preview_method) == ("127.0.0.1", 8190, True, "auto")
