import dataclasses

import pytest

from canu_core.config import ConfigError, Params, load_params, make_params


def test_defaults_and_override():
    params = make_params({"seed": 3, "device": "cpu"})
    assert params.seed == 3 and params.device == "cpu"
    assert params.run_name == Params().run_name


def test_unknown_name_is_an_error_with_suggestion():
    with pytest.raises(ConfigError, match=r"'sede' \(did you mean 'seed'\?\)"):
        make_params({"sede": 1})


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("seed", "3", "expected int >= 0, found '3' (str)"),
        ("seed", True, "expected int >= 0, found True (bool)"),
        ("interactive", 1, "expected bool, found 1 (int)"),
        ("device", "gpu", "expected one of 'auto', 'cpu', 'cuda', found 'gpu'"),
        ("run_name", 5, "expected str, found 5 (int)"),
    ],
)
def test_wrong_types_are_errors(name, value, expected):
    with pytest.raises(ConfigError) as err:
        make_params({name: value})
    assert expected in str(err.value)
    assert repr(name) in str(err.value)


def test_yaml_layers_in_order(tmp_path):
    first = tmp_path / "a.yaml"
    second = tmp_path / "b.yaml"
    first.write_text("seed: 1\nrun_name: first\n")
    second.write_text("seed: 2\n")
    params = load_params(first, second, overrides={"height": 32})
    assert (params.seed, params.run_name, params.height) == (2, "first", 32)


def test_yaml_error_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("heigth: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown parameter\(s\): 'heigth' \(did you mean 'height'\?\)"):
        load_params(bad)


def test_yaml_not_a_mapping(tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping of parameter names to values, found list"):
        load_params(bad)


def test_every_parameter_is_in_exactly_one_group_and_a_file_may_write_groups_as_mappings():
    from canu_core.config import GROUPS, STUDY_FIELDS

    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(f.name for f in dataclasses.fields(Params)) and len(grouped) == len(set(grouped))
    assert STUDY_FIELDS == GROUPS["study"]
    nested = make_params({"adversary": {"adversary": "adv", "mu": 0.2}, "mmt": {"mmt_lr": 0.0007}, "seed": 3})
    assert nested == make_params({"adversary": "adv", "mu": 0.2, "mmt_lr": 0.0007, "seed": 3})
    assert make_params({"adversary": "none"}).adversary == "none"  # the parameter, not its group


def test_a_name_under_the_wrong_group_or_given_twice_is_refused():
    with pytest.raises(ConfigError, match="parameter 'mu' belongs to group 'adversary', not 'mmt'"):
        make_params({"mmt": {"mu": 0.1}})
    with pytest.raises(ConfigError, match=r"parameter 'mu' given twice \(flat and in group 'adversary'\)"):
        make_params({"mu": 0.1, "adversary": {"mu": 0.2}})
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\): 'mmt_lrr' \(did you mean 'mmt_lr'\?\)"):
        make_params({"mmt": {"mmt_lrr": 0.1}})


def test_a_renamed_parameter_is_refused_with_its_new_name_and_a_recorded_run_reads_under_the_new_one(tmp_path):
    from canu_core.runs import RunFolder

    with pytest.raises(ConfigError, match=r"renamed parameter\(s\): 'adapt_lr' is now 'mmt_lr'"):
        make_params({"adapt_lr": 0.0007})
    run = RunFolder(tmp_path / "old")
    run.path.mkdir()
    run.params_path.write_text("notebook: 03_train\nadapt_lr: 0.0007\nmu: 0.1\n")  # a record from before the rename
    assert run.read_params() == {"notebook": "03_train", "mmt_lr": 0.0007, "mu": 0.1}


PAPER_SETTINGS = ("market_to_duke", "duke_to_market", "market_to_msmt", "duke_to_msmt")


@pytest.mark.parametrize("setting", PAPER_SETTINGS)
def test_the_papers_parameter_files_load_with_the_release_batchnorm_groups(setting):
    from canu_core.runs import project_root

    path = project_root() / "params" / f"{setting}.yaml"
    params = load_params(path)
    source, target = setting.split("_to_")
    names = {"market": "market1501", "duke": "dukemtmc", "msmt": "msmt17"}
    assert params.run_name == f"{setting}_canu_mmt" and (params.source, params.target) == (names[source], names[target])
    assert not params.sync_bn and params.bn_group_size == 16  # four groups of 16 in a batch of 64, as 4 GPUs
    assert (params.batch_ids * params.instances) % params.bn_group_size == 0
    # --nosampler has no parameter here: the file says so where the release used it (not with MSMT17 as target)
    says_no_counterpart = "--nosampler (shuffled batches instead of MMT's identity sampler): no counterpart" in (
        path.read_text()
    )
    assert says_no_counterpart == (target != "msmt")


def test_batchnorm_groups_refuse_sync_bn_and_take_the_old_chunk_name():
    assert Params().bn_group_size == 0
    with pytest.raises(ConfigError, match="set sync_bn false, or bn_group_size 0"):
        make_params({"sync_bn": True, "bn_group_size": 16})
    with pytest.raises(ConfigError, match="'bn_chunk' is now 'bn_group_size'"):
        make_params({"bn_chunk": 16})


def test_camera_aware_jaccard_parameters_have_ca_jaccards_defaults_and_their_rules():
    params = make_params({"jaccard": "ca", "clustering": {"k2_intra": 2, "k2_inter": 4}})  # its README's command
    assert (params.jaccard, params.ckrnns, params.clqe, params.clqe_warmup) == ("ca", True, True, True)
    assert (params.k1_intra, params.k1_inter, params.k2_intra, params.k2_inter) == (5, 20, 2, 4)
    for values, expected in [
        ({"jaccard": "CA"}, "expected one of 'mmt', 'spcl', 'ca', found 'CA'"),
        ({"k1_intra": "5"}, r"parameter 'k1_intra': expected int >= 1, found '5' \(str\)"),
        ({"k2_inter": 0}, "parameter 'k2_inter': expected int >= 1, found 0"),
        ({"ckrnns": 1}, r"parameter 'ckrnns': expected bool, found 1 \(int\)"),
        ({"k1_intr": 5}, r"'k1_intr' \(did you mean 'k1_intra'\?\)"),
        ({"jaccard": "ca", "k2_intra": 8}, "'k2_intra': CA-Jaccard ranks only the k1_intra \\+ 2 = 7 nearest, found 8"),
        ({"jaccard": "ca", "k1_inter": 1, "k2_inter": 4}, "k1_inter \\+ 2 = 3 nearest, found 4"),
        ({"jaccard": "ca", "k2": 1}, "set k2 > 1 with clqe on, or clqe false"),
        ({"jaccard": "ca", "clqe": False, "k1": 5, "k2": 8}, "'k2': with jaccard 'ca' and clqe off"),
        ({"jaccard": "ca", "neighbour_search": "ivf"}, "jaccard 'ca' searches exactly only, found 'ivf'"),
    ]:
        with pytest.raises(ConfigError, match=expected):
            make_params(values)
    assert make_params({"jaccard": "ca", "clqe": False, "k2": 1}).k2 == 1  # no query expansion at all
    assert make_params({"k2_intra": 8}).k2_intra == 8  # read by jaccard "ca" only
