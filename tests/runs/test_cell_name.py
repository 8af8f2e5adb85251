"""A table cell's run name, as the protocols and the tables both derive it."""

from conml.cell_name import cell_name, cell_tags


def test_each_swept_value_reads_as_its_label_in_order():
    values = {"dataset": "omniglot", "learner": "maml", "dataset.ways": 20, "dataset.shots": 5, "conml": "on"}
    assert cell_name(values) == "omniglot-maml-20way-5shot-conml"
    assert cell_tags(values) == ["omniglot", "maml", "20way", "5shot", "conml"]
    assert cell_name({"experiment": "sine/conml_update", "conml": "icl"}) == "conml_update-conml"
