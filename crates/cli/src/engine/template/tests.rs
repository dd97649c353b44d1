use super::*;
use serde_json::json;

fn r(t: &str, v: Json) -> String {
    render(t, &v).unwrap()
}

#[test]
fn fields_and_nesting() {
    let v = json!({"State": {"Pid": 42, "Running": true}, "Name": "/web"});
    assert_eq!(r("{{.State.Pid}} {{.Name}}", v.clone()), "42 /web");
    assert_eq!(r("{{.State.Running}}", v.clone()), "true");
    let e = render("{{.State.Nope}}", &v).unwrap_err().to_string();
    assert!(e.contains("can't evaluate field Nope"), "{e}");
}

#[test]
fn lists_and_maps_print_as_go() {
    let v = json!({"Env": ["A=1", "B=2"], "Labels": {"b": "2", "a": "1"}, "Cmd": null});
    assert_eq!(r("{{.Env}}", v.clone()), "[A=1 B=2]");
    assert_eq!(r("{{.Labels}}", v.clone()), "map[a:1 b:2]");
    assert_eq!(r("{{.Labels.a}}", v.clone()), "1");
    assert_eq!(r("{{.Labels.zz}}", v.clone()), "<no value>");
    assert_eq!(r("{{.Cmd}}", v), "<nil>");
}

#[test]
fn functions() {
    let v = json!({"Env": ["A=1", "B=2"], "Name": "Web", "Config": {"User": "", "Tty": false}});
    assert_eq!(r("{{json .Env}}", v.clone()), r#"["A=1","B=2"]"#);
    assert_eq!(
        r("{{json .Config}}", v.clone()),
        r#"{"Tty":false,"User":""}"#
    );
    assert_eq!(r("{{join .Env \",\"}}", v.clone()), "A=1,B=2");
    assert_eq!(r("{{lower .Name}}{{upper .Name}}", v.clone()), "webWEB");
    assert_eq!(r("{{index .Env 1}}", v.clone()), "B=2");
    assert_eq!(r("{{index .Config \"Nope\"}}", v.clone()), "");
    assert_eq!(r("{{len .Env}}", v.clone()), "2");
    assert_eq!(r("{{printf \"%s-%d\" .Name 3}}", v.clone()), "Web-3");
    assert_eq!(r("{{title \"hello world\"}}", v.clone()), "Hello World");
    assert_eq!(
        r("{{printf \"%v|%s\" .Env .Name}}", v.clone()),
        "[A=1 B=2]|Web"
    );
    assert_eq!(r("{{print .Env}}", v.clone()), "[A=1 B=2]");
    assert_eq!(r("{{truncate .Name 2}}", v.clone()), "We");
    assert_eq!(r("{{split \"a:b\" \":\"}}", v.clone()), "[a b]");
    assert_eq!(r("{{if .Config.Tty}}tty{{else}}no{{end}}", v), "no");
}

#[test]
fn range_over_maps_in_key_order() {
    let v = json!({"L": {"c": "3", "a": "1", "b": "2"}, "E": [], "N": ["x", "y"]});
    assert_eq!(
        r("{{range $k, $v := .L}}{{$k}}={{$v}};{{end}}", v.clone()),
        "a=1;b=2;c=3;"
    );
    assert_eq!(r("{{range .L}}{{.}}{{end}}", v.clone()), "123");
    assert_eq!(
        r("{{range $i, $x := .N}}{{$i}}{{$x}} {{end}}", v.clone()),
        "0x 1y "
    );
    assert_eq!(r("{{range .E}}x{{else}}empty{{end}}", v.clone()), "empty");
    assert_eq!(r("{{range .N}}{{.}}{{else}}empty{{end}}", v.clone()), "xy");
    assert_eq!(r("{{- range .N -}} {{.}} {{- end}}", v), "xy");
}

#[test]
fn variables_and_strings_with_braces() {
    let v = json!({"Name": "web"});
    assert_eq!(r("{{$n := .Name}}{{$n}}", v.clone()), "web");
    assert_eq!(r("{{\"}}\"}}", v.clone()), "}}");
    assert!(render("{{.Name", &v).is_err());
    assert_eq!(
        r("{{define \"n\"}}<{{.}}>{{end}}{{template \"n\" .Name}}", v),
        "<web>"
    );
}

#[test]
fn formats() {
    assert_eq!(Format::parse("table"), Format::Table(None));
    assert_eq!(Format::parse("json"), Format::Json);
    assert_eq!(
        Format::parse("table {{.ID}}\\t{{.Names}}"),
        Format::Table(Some("{{.ID}}\t{{.Names}}".into()))
    );
    assert_eq!(Format::parse("{{.ID}}"), Format::Template("{{.ID}}".into()));
    assert_eq!(
        Format::parse("table\\t{{.ID}}"),
        Format::Table(Some("{{.ID}}".into()))
    );
}

#[test]
fn tables_have_headers_and_aligned_columns() {
    let rows = vec![
        json!({"ID": "abc", "Names": "web", "CreatedAt": "x"}),
        json!({"ID": "abcdefabcdef", "Names": "db", "CreatedAt": "y"}),
    ];
    let f = Format::parse("table {{.ID}}\\t{{.Names}}\\t{{.CreatedAt}}");
    let out = f.rows("", &[("ID", "CONTAINER ID")], &rows).unwrap();
    assert_eq!(
        out,
        "CONTAINER ID   NAMES     CREATED AT\n\
         abc            web       x\n\
         abcdefabcdef   db        y\n"
    );
    // Functions leave the header names alone, as Docker's do.
    let f = Format::parse("table {{upper .Names}}\\t{{json .ID}}");
    let out = f.rows("", &[("ID", "CONTAINER ID")], &rows).unwrap();
    assert!(
        out.starts_with("NAMES     CONTAINER ID\nWEB       \"abc\"\n"),
        "{out}"
    );
    // The default table when no template follows `table`.
    let out = Format::parse("table")
        .rows("{{.Names}}", &[], &rows)
        .unwrap();
    assert_eq!(out, "NAMES\nweb\ndb\n");
    let plain = Format::parse("{{.Names}}").rows("", &[], &rows).unwrap();
    assert_eq!(plain, "web\ndb\n");
}

#[test]
fn label_method() {
    let v = json!({"Labels": "a=1,b=x,y", "Names": "web"});
    assert_eq!(r("{{.Label \"a\"}}", v.clone()), "1");
    assert_eq!(r("{{.Label \"b\"}}|{{.Names}}", v.clone()), "x,y|web");
    assert_eq!(r("{{.Label \"zz\"}}", v.clone()), "");
    assert_eq!(
        r("{{if eq (.Label \"a\") \"1\"}}yes{{end}}", v.clone()),
        "yes"
    );
    assert_eq!(r("{{$.Label `a`}}", v), "1");
    let m = json!({"Labels": {"k": "v"}});
    assert_eq!(r("{{.Label \"k\"}}", m), "v");
    assert_eq!(label_calls("\".Label x\""), "\".Label x\"");
    // Docker's header: the key's last part, `-`/`_` as spaces.
    let rows = vec![json!({"Labels": "com.x.tier_name=db", "Names": "web"})];
    let t = Format::parse("table {{.Names}}\\t{{.Label \"com.x.tier_name\"}}")
        .rows("", &[("Names", "NAMES")], &rows)
        .unwrap();
    assert_eq!(t, "NAMES     tier name\nweb       db\n");
}

#[test]
fn header_names() {
    assert_eq!(header_of("CreatedAt"), "CREATED AT");
    assert_eq!(header_of("ID"), "ID");
    assert_eq!(header_of("RepoDigests"), "REPO DIGESTS");
}
