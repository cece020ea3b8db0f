

def test_a_filler_takes_no_name_of_the_table() -> None:
    """A table skipping id 2 with a class of its own named 'class_2' had two classes 'class_2': evaluate showed the
    user's class with support 0 and no IoU while 41 000 reference pixels held it."""
    from rsmamba.classes import dense_classes

    table = dense_classes([{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "Class_2", "color": [9, 9, 9]},
                           {"id": 3, "name": "road", "color": [1, 1, 1]}])
    assert [c.name for c in table] == ["background", "Class_2", "unused_class_2", "road"] and table[2].filler


def test_name_key_matches_isprs_official_names_and_separators() -> None:
    """'Low vegetation' and low_vegetation are one class, as are ISPRS's 'Impervious surfaces' and impervious (QA);
    names of other words stay apart."""
    from rsmamba.classes import ISPRS_CLASSES, name_key

    official = ["Impervious surfaces", "Building", "Low vegetation", "Tree", "Car", "Clutter/background"]
    assert [name_key(n) for n in official] == [name_key(c.name) for c in ISPRS_CLASSES]
    assert name_key(" Low-Vegetation ") == name_key("low_vegetation") == "low_vegetation"
    assert name_key("impervious") != name_key("building") and name_key("low vegetation") != name_key("vegetation")
