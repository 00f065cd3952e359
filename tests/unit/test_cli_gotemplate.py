"""pyctr's Go text/template evaluator (pyctrd/cli/gotemplate.py): the template
forms podman's man pages and users write, printed as Go prints them."""

from __future__ import annotations

from typing import Any

import pytest

from pyctrd.cli.errors import CliError
from pyctrd.cli.gotemplate import (
    Report,
    Template,
    TemplateError,
    go_str,
    header_name,
    normalize,
    render,
    tabwrite,
)
from pyctrd.cli.reports import GoMap, GoStruct

INSPECT: dict[str, Any] = {
    "Id": "f00dcafe" * 8, "Name": "web", "ImageName": "busybox",
    "State": {"Status": "running", "ExitCode": 0, "Running": True, "Pid": 42},
    "Mounts": [{"Source": "/srv", "Destination": "/data", "Options": ["ro"]}],
    "HostConfig": {"LogConfig": {"Type": "k8s-file", "Path": "/var/log/ctr.log"},
                   "Memory": 0},
    "Config": {"Labels": GoMap({"app": "shop", "tier": "web"}), "Env": ["A=1", "B=2"],
               "Cmd": ["httpd", "-f"], "Empty": []},
}


@pytest.mark.parametrize(("template", "expected"), [
    ("{{.Name}}", "web"),
    ("{{.State.Status}}", "running"),
    ("{{.State.ExitCode}}", "0"),
    ("{{.State.Running}}", "true"),
    ("{{.ImageName}}", "busybox"),
    ("{{.HostConfig.LogConfig.Path}}", "/var/log/ctr.log"),
    ("{{index .Mounts 0}}", "map[Destination:/data Options:[ro] Source:/srv]"),
    ("{{(index .Mounts 0).Source}}", "/srv"),
    ("{{index .Config.Labels \"app\"}}", "shop"),
    ("{{.Config.Labels.app}}", "shop"),
    ("{{.Config.Labels.nosuch}}", "<no value>"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{join .Config.Cmd \" \"}}", "httpd -f"),
    ("{{json .State}}", '{"Status":"running","ExitCode":0,"Running":true,"Pid":42}'),
    ("{{json .Config.Cmd}}", '["httpd","-f"]'),
    ("{{range .Config.Env}}<{{.}}>{{end}}", "<A=1><B=2>"),
    ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:A=1 1:B=2 "),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "app=shop;tier=web;"),
    ("{{range .Config.Empty}}x{{else}}empty{{end}}", "empty"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if eq .State.Status \"exited\"}}e{{else if eq .State.Status \"running\"}}r"
     "{{else}}?{{end}}", "r"),
    ("{{if and .State.Running (eq .State.Pid 42)}}yes{{end}}", "yes"),
    ("{{if or (eq .Name \"x\") (ne .Name \"y\")}}yes{{end}}", "yes"),
    ("{{if not .State.ExitCode}}ok{{end}}", "ok"),
    ("{{with .HostConfig.LogConfig}}{{.Type}}{{end}}", "k8s-file"),
    ("{{upper .Name}} {{lower \"ABC\"}} {{title \"hello world\"}}", "WEB abc Hello World"),
    ("{{truncate .Id 12}}", "f00dcafef00d"),
    ("{{.Name | upper}}", "WEB"),
    ("{{.Name | printf \"%s!\"}}", "web!"),
    ("{{printf \"%s=%d %q %v\" .Name 7 .Name .State.Running}}", 'web=7 "web" true'),
    ("{{len .Config.Env}}", "2"),
    ("{{$n := .Name}}{{$n}}{{$n}}", "webweb"),
    ("{{with $s := .State}}{{$s.Pid}}{{end}}", "42"),
    ("{{$.Name}}", "web"),
    ("{{range .Config.Env}}{{$.Name}}{{end}}", "webweb"),
    ("{{/* a comment */}}x", "x"),
    ("a {{- .Name -}} b", "awebb"),
    ("{{split \"a,b\" \",\"}}", "[a b]"),
    ("{{pad .Name 1 2}}|", " web  |"),
    ("{{\"\\t\"}}", "\t"),
    ("{{`raw\\n`}}", "raw\\n"),
    ("{{slice .Name 1}}", "eb"),
    ("{{index .Config.Env 1}}", "B=2"),
    ("{{print .Name 1}}", "web1"),
    ("{{println .Name}}", "web\n"),
    ("{{.State.Pid | printf \"%05d\"}}", "00042"),
])
def test_template_forms(template: str, expected: str) -> None:
    assert Template(template).execute(INSPECT) == expected


@pytest.mark.parametrize(("template", "message"), [
    ("{{.Nope}}", "can't evaluate field Nope"),
    ("{{.State.Nope}}", "can't evaluate field Nope"),
    ("{{if .Name}}x", "unexpected EOF"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{nofunc .Name}}", 'function "nofunc" not defined'),
    ("{{index .Mounts 5}}", "index out of range"),
    ("{{template \"x\"}}", "not supported"),
])
def test_template_errors_are_one_line_cli_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        Template(template).execute(INSPECT)
    assert isinstance(caught.value, CliError) and caught.value.status == 125
    assert caught.value.message.startswith("template: ")
    assert message in caught.value.message


def test_unclosed_action_is_refused_as_go_does() -> None:
    with pytest.raises(TemplateError, match="unclosed action"):
        Template("x {{.Name")


def test_go_printing() -> None:
    assert go_str(True) == "true" and go_str(None) == "<no value>"
    assert go_str(2.0) == "2" and go_str(0.5) == "0.5"
    assert go_str({"b": 1, "a": [1, "x"]}) == "map[a:[1 x] b:1]"


def test_struct_fields_and_methods() -> None:
    item = GoStruct("psReporter", {"ID": "abc", "Label": lambda k: {"app": "shop"}.get(k, "")})
    assert Template('{{.ID}} {{.Label "app"}}').execute(item) == "abc shop"
    with pytest.raises(TemplateError, match="can't evaluate field Names in type psReporter"):
        Template("{{.Names}}").execute(item)
    # json of a struct: its JSON form, else its fields without methods
    assert Template("{{json .}}").execute(item) == '{"ID":"abc"}'
    item.json_form = {"Id": "abcdef"}
    assert Template("{{json .}}").execute(item) == '{"Id":"abcdef"}'


def test_normalize_and_headers() -> None:
    assert normalize("table {{.ID}}\\t{{.Names}}") == (True, "{{.ID}}\t{{.Names}}\n")
    assert normalize("{{.ID}}") == (False, "{{.ID}}\n")
    assert header_name("CreatedAt") == "CREATED AT"
    assert header_name("ImageID") == "IMAGE ID"
    assert header_name("ID", {"ID": "CONTAINER ID"}) == "CONTAINER ID"
    assert header_name("Names") == "NAMES"


def test_table_renders_a_header_row_and_aligns_columns() -> None:
    rows = [{"ID": "abc", "Names": "web"}, {"ID": "abcdefabcdefabc", "Names": "db"}]
    out = render("table {{.ID}}\t{{.Names}}", rows, {"ID": "CONTAINER ID"})
    assert out.splitlines() == ["CONTAINER ID     NAMES", "abc              web",
                                "abcdefabcdefabc  db"]
    assert render("table {{.ID}}\t{{.Names}}", rows, noheading=True).splitlines()[0] \
        .startswith("abc ")
    # functions pass headings through: the header of {{upper .Names}} is NAMES
    assert render("table {{upper .Names}}", rows).splitlines() == ["NAMES", "WEB", "DB"]
    # without "table": no header, one line per item
    assert render("{{.ID}}", rows) == "abc\nabcdefabcdefabc\n"


def test_tabwriter_minimum_width_and_padding() -> None:
    assert tabwrite("a\tb\nccc\td") == "a           b\nccc         d"


def test_report_json_and_default() -> None:
    report = Report("json", "table {{.ID}}", json_of=lambda i: {"Id": i["ID"]})
    assert report.lines([{"ID": "x"}]) == '[\n    {\n        "Id": "x"\n    }\n]\n'
    assert Report("", "table {{.ID}}").lines([{"ID": "x"}]) == "ID\nx\n"
    assert Report("", "table {{.ID}}", noheading=True).lines([{"ID": "x"}]) == "x\n"
    with pytest.raises(TemplateError):  # a bad template fails before anything is read
        Report("{{if}}", "table {{.ID}}")
