"""The typed environment readers: defaults, parsing, and one clear line on bad input."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from soteria_site import env


def test_blank_values_fall_back_to_the_default():
    assert env.env_str({"X": "   "}, "X", "dflt") == "dflt"
    assert env.env_int({}, "X", 7) == 7


@pytest.mark.parametrize("raw,expected", [("true", True), ("1", True), ("YES", True), ("off", False), ("0", False)])
def test_bool_accepts_the_usual_spellings(raw, expected):
    assert env.env_bool({"X": raw}, "X", not expected) is expected


def test_bool_rejects_anything_else_naming_the_variable():
    with pytest.raises(ImproperlyConfigured, match=r"X='maybe' is not valid: use true or false"):
        env.env_bool({"X": "maybe"}, "X", False)


def test_int_enforces_type_and_range():
    assert env.env_int({"X": " 42 "}, "X", 1, minimum=1) == 42
    with pytest.raises(ImproperlyConfigured, match=r"X='abc' is not valid: expected a whole number of at least 1"):
        env.env_int({"X": "abc"}, "X", 1, minimum=1)
    with pytest.raises(ImproperlyConfigured, match="at least 10 and at most 20"):
        env.env_int({"X": "21"}, "X", 15, minimum=10, maximum=20)


def test_float_rejects_nan_infinity_and_the_excluded_minimum():
    assert env.env_float({"X": "1.5"}, "X", 2.0, minimum=0, exclusive_minimum=True) == 1.5
    for bad in ("nan", "inf", "abc", "0"):
        with pytest.raises(ImproperlyConfigured, match="X="):
            env.env_float({"X": bad}, "X", 2.0, minimum=0, exclusive_minimum=True)


def test_choice_is_case_insensitive_and_lists_what_is_allowed():
    assert env.env_choice({"X": "Restic"}, "X", "longhorn", ("longhorn", "restic")) == "restic"
    with pytest.raises(ImproperlyConfigured, match="X='tape' is not valid: use one of longhorn, restic"):
        env.env_choice({"X": "tape"}, "X", "longhorn", ("longhorn", "restic"))


def test_list_splits_on_the_given_separators_and_drops_empty_items():
    assert env.env_list({"X": "a, b;;c ,"}, "X", separators=",;") == ["a", "b", "c"]
    assert env.env_list({}, "X", ["d"]) == ["d"]


def test_args_split_like_a_shell_and_report_bad_quoting():
    assert env.env_args({"X": "--exclude '*.tmp' --one-file-system"}, "X") == ["--exclude", "*.tmp", "--one-file-system"]
    with pytest.raises(ImproperlyConfigured, match="cannot split"):
        env.env_args({"X": "--exclude 'oops"}, "X")


def test_key_values_parse_a_node_selector():
    assert env.env_key_values({"X": "disk=ssd, zone=a"}, "X") == {"disk": "ssd", "zone": "a"}
    with pytest.raises(ImproperlyConfigured, match="key=value"):
        env.env_key_values({"X": "disk"}, "X")


def test_url_must_be_http_or_https():
    assert env.env_url({"X": "http://lh:9500/"}, "X", "http://d") == "http://lh:9500"
    with pytest.raises(ImproperlyConfigured, match="http:// or https://"):
        env.env_url({"X": "longhorn:9500"}, "X", "http://d")


def test_dns_label_takes_a_namespace_name_and_refuses_anything_else():
    assert env.env_dns_label({}, "X", "longhorn-system") == "longhorn-system"
    assert env.env_dns_label({"X": "storage-1"}, "X", "d") == "storage-1"
    for bad in ("Longhorn", "longhorn_system", "-lh", "lh-", "a" * 64, "a.b"):
        with pytest.raises(ImproperlyConfigured, match="X=.*namespace name"):
            env.env_dns_label({"X": bad}, "X", "d")


@pytest.mark.parametrize("raw,bind", [(":8080", "0.0.0.0:8080"), ("127.0.0.1:9000", "127.0.0.1:9000"),
                                      ("[::]:8080", "[::]:8080"), ("soteria:80", "soteria:80")])
def test_listen_addr_becomes_a_bind_address(raw, bind):
    assert env.env_listen_addr({"X": raw}, "X", ":8080") == bind


@pytest.mark.parametrize("raw", ["8080", ":0", ":70000", "host:", "a b:80"])
def test_listen_addr_rejects_malformed_values(raw):
    with pytest.raises(ImproperlyConfigured, match="host:port"):
        env.env_listen_addr({"X": raw}, "X", ":8080")


def test_secret_comes_from_the_variable_or_from_a_file(tmp_path):
    secret_file = tmp_path / "token"
    secret_file.write_text("from-file\n")
    assert env.env_secret({"X": "direct"}, "X") == "direct"
    assert env.env_secret({"X_FILE": str(secret_file)}, "X") == "from-file"
    with pytest.raises(ImproperlyConfigured, match="both set"):
        env.env_secret({"X": "a", "X_FILE": str(secret_file)}, "X")
    with pytest.raises(ImproperlyConfigured, match="X_FILE=.* cannot be read"):
        env.env_secret({"X_FILE": str(tmp_path / "missing")}, "X")
