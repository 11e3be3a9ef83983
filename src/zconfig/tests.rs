//! Error locations of the text layer, one table row per error.

use std::collections::HashMap;
use std::path::Path;

use super::parser::{parse_str_with_env, read_text};
use super::substitute::Environment;
use super::{SyntaxErrorKind as K, *};

struct NoEnv;
impl Environment for NoEnv {
    fn var(&self, name: &str) -> Option<String> {
        (name == "HOME").then(|| "/home/zd".into())
    }
}

fn parse(text: &str) -> Result<Document<'_>, Vec<SyntaxError>> {
    parse_str_with_env(text, Path::new("/nonexistent/t.conf"), &NoEnv)
}

fn first_error(text: &str) -> (u32, SyntaxErrorKind) {
    let errors = parse(text).expect_err("input should be rejected");
    (errors[0].location.line, errors[0].kind.clone())
}

#[test]
fn error_locations() {
    let unbalanced = K::UnbalancedSectionEnd {
        expected: "sec".into(),
        found: "sec one".into(),
    };
    let rows: Vec<(&str, u32, SyntaxErrorKind)> = vec![
        ("a 1\n<sec\n", 2, K::MalformedSectionStart),
        ("a 1\n</sec\n", 2, K::MalformedSectionEnd),
        ("\n< sec one >\n", 2, K::MalformedSectionHeader),
        ("<sec one two>\n</sec>\n", 1, K::MalformedSectionHeader),
        ("<sec one> y 1 </sec>\n", 1, K::MalformedSectionHeader),
        ("<>\n", 1, K::MalformedSectionHeader),
        ("a 1\n</sec>\n", 2, K::UnexpectedSectionEnd),
        ("<sec one>\n</sec one>\n", 2, unbalanced),
        (
            "<sec>\na 1\n",
            2,
            K::UnclosedSections { open: "sec".into() },
        ),
        ("a 1\n(x) 2\n", 2, K::MalformedData),
        ("a 1\n% define x\n", 2, K::MalformedDirective),
        ("a 1\n%DEFINE x\n", 2, K::UnknownDirective("DEFINE".into())),
        (
            "a 1\n%define\n",
            2,
            K::MissingDirectiveArgument("define".into()),
        ),
        (
            "%define a 1\n%define A 2\n",
            2,
            K::CannotRedefine("a".into()),
        ),
        ("a 1\n%define 1a x\n", 2, K::IllegalDefineName("1a".into())),
        ("a 1\nb x$\n", 2, K::LoneDollar),
        ("a 1\nb $1\n", 2, K::DollarNotFollowedByName),
        ("a 1\nb ${}\n", 2, K::BraceNotFollowedByName),
        (
            "%define foo 1\nb ${foo\n",
            2,
            K::BraceNotClosed("foo".into()),
        ),
        ("a 1\nb $(\n", 2, K::ParenNotFollowedByName),
        ("a 1\nb $(HOME\n", 2, K::ParenNotClosed("HOME".into())),
        ("a 1\nb $(NOPE)\n", 2, K::NoReplacement("NOPE".into())),
        ("a 1\nb $Nope\n", 2, K::NoReplacement("Nope".into())),
        ("a 1\n%include x.conf#frag\n", 2, K::FragmentInInclude),
        (
            "a 1\n%include http://h/x.conf\n",
            2,
            K::UnsupportedUrl("http://h/x.conf".into()),
        ),
    ];
    for (text, line, kind) in rows {
        assert_eq!(first_error(text), (line, kind), "input {text:?}");
    }
}

#[test]
fn errors_are_collected_past_the_first() {
    let errors = parse("a $\n<x\nb ${\n").unwrap_err();
    let lines: Vec<u32> = errors.iter().map(|e| e.location.line).collect();
    assert_eq!(lines, [1, 2, 3]);
}

#[test]
fn tree_shape_and_case_rules() {
    let doc = parse(
        "%define Dir /srv\n\
         Key $DIR/a ${dir}b $$\n\
         <SEC Main>\n  Inner x # not a comment\n  <sub/>\n</Sec>\n\
         <env>\n  Path $(HOME)\n</env>\n",
    )
    .unwrap();
    let root = &doc.root;
    let values = |s| doc.values_of(s);
    assert_eq!(values(root)[0].key, "Key");
    assert_eq!(values(root)[0].value, "/srv/a /srvb $");
    let sec = &root.sections[0];
    assert_eq!(
        (&*sec.type_name, sec.name.as_deref()),
        ("sec", Some("main"))
    );
    assert_eq!(values(sec)[0].value, "x # not a comment");
    assert_eq!((sec.start.line, sec.end.line), (3, 6));
    assert_eq!(sec.sections[0].type_name, "sub");
    assert_eq!(values(&root.sections[1])[0].value, "/home/zd");
}

#[test]
fn key_value_quirks() {
    let doc = parse("a(b) x\nc\nd = 1\ne foo \\\n").unwrap();
    let kv: HashMap<&str, &str> = doc
        .values_of(&doc.root)
        .iter()
        .map(|v| (&*v.key, &*v.value))
        .collect();
    assert_eq!(kv["a"], "(b) x");
    assert_eq!(kv["c"], "");
    assert_eq!(kv["d"], "= 1");
    assert_eq!(kv["e"], "foo \\");
}

#[test]
fn includes_resolve_relative_and_detect_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("inc.conf"), "%define later yes\nk2 v2\n").unwrap();
    std::fs::write(sub.join("loop.conf"), "%include ../main.conf\n").unwrap();
    let main = dir.path().join("main.conf");
    let text = "<s>\n%include sub/inc.conf\n</s>\nk $later\n";
    std::fs::write(&main, text).unwrap();
    let doc = parse_str_with_env(text, &main, &NoEnv).unwrap();
    let inner = &doc.values_of(&doc.root.sections[0])[0];
    assert_eq!(inner.key, "k2");
    let pos = inner.pos;
    assert_eq!(pos.line, 2);
    assert!(doc.location(pos).file.ends_with("sub/inc.conf"));
    assert_eq!(doc.values_of(&doc.root)[0].value, "yes");

    let text = "a 1\n%include sub/loop.conf\n";
    std::fs::write(&main, text).unwrap();
    let errors = parse_str_with_env(text, &main, &NoEnv).unwrap_err();
    assert!(matches!(errors[0].kind, K::IncludeCycle(_)), "{errors:?}");
    assert_eq!(errors[0].location.line, 1);
    assert!(errors[0].location.file.ends_with("loop.conf"));
    assert_eq!(errors[0].included_from[0].line, 2);

    // An included file must balance its own sections.
    std::fs::write(sub.join("open.conf"), "<x>\n").unwrap();
    std::fs::write(sub.join("close.conf"), "</s>\n").unwrap();
    let errors = parse_str_with_env("%include sub/open.conf\n", &main, &NoEnv).unwrap_err();
    assert!(matches!(errors[0].kind, K::UnclosedSections { .. }));
    let errors =
        parse_str_with_env("<s>\n%include sub/close.conf\n</s>\n", &main, &NoEnv).unwrap_err();
    assert_eq!(errors[0].kind, K::UnexpectedSectionEnd);

    let errors = parse_str_with_env("\n%include nope.conf\n", &main, &NoEnv).unwrap_err();
    assert!(matches!(errors[0].kind, K::Read { .. }));
    assert_eq!(errors[0].location.line, 2);
}

#[test]
fn deep_nesting_is_refused_not_recursed() {
    let depth = 10_000;
    let text = "<demostorage>\n".repeat(depth) + &"</demostorage>\n".repeat(depth);
    let errors = parse(&text).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind, K::SectionsTooDeep(64));
    assert_eq!(errors[0].location.line, 65);
}

#[test]
fn only_regular_files_are_included() {
    let errors = parse("a 1\n%include /dev/zero\n").unwrap_err();
    assert!(
        matches!(
            errors[0].kind,
            K::NotAFile {
                what: "a character device",
                ..
            }
        ),
        "{errors:?}"
    );
    assert_eq!(errors[0].location.line, 2);
    let errors = parse("%include /\n").unwrap_err();
    assert!(matches!(
        errors[0].kind,
        K::NotAFile {
            what: "a directory",
            ..
        }
    ));
    // /dev/null is the one device allowed: an empty file.
    assert!(parse("a 1\n%include /dev/null\n").is_ok());

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let main = dir.path().join("main.conf");
    let errors = parse_str_with_env("\n\n%include fifo\n", &main, &NoEnv).unwrap_err();
    assert_eq!(errors[0].location.line, 3);
    assert_eq!(
        errors[0].to_string(),
        format!(
            "{}:3: cannot read {}: it is a FIFO, not a regular file",
            main.display(),
            fifo.display()
        )
    );
    assert!(matches!(
        read_text(&fifo),
        Err(K::NotAFile { what: "a FIFO", .. })
    ));
}

#[test]
fn a_byte_order_mark_is_reported_at_line_1() {
    let errors = parse("\u{feff}<sec>\na 1\n</sec>\n").unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].location.line, &errors[0].kind),
        (1, &K::ByteOrderMark)
    );
    // The rest of the file is still read: its own errors are reported.
    let errors = parse("\u{feff}a 1\n</sec>\n").unwrap_err();
    assert_eq!(errors[1].kind, K::UnexpectedSectionEnd);
    assert_eq!(errors[1].location.line, 2);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bom.inc"), "\u{feff}b 2\n").unwrap();
    let main = dir.path().join("main.conf");
    let errors = parse_str_with_env("a 1\n%include bom.inc\n", &main, &NoEnv).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind, K::ByteOrderMark);
    assert!(errors[0].location.file.ends_with("bom.inc"));
    assert_eq!(errors[0].location.line, 1);
    assert_eq!(errors[0].included_from[0].line, 2);
}

#[test]
fn non_ascii_keys_stop_at_parentheses_and_unicode_space() {
    let doc = parse("é(x) 1\nü\u{a0}2\n").unwrap();
    let values = doc.values_of(&doc.root);
    assert_eq!(values[0].key, "é");
    assert_eq!(values[0].value, "(x) 1");
    assert_eq!(values[1].key, "ü");
    assert_eq!(values[1].value, "2");
}

#[test]
fn doubling_defines_are_capped() {
    let mut text = String::from("%define a0 xx\n");
    for i in 1..=40 {
        text.push_str(&format!("%define a{i} $a{}$a{}\n", i - 1, i - 1));
    }
    let errors = parse(&text).unwrap_err();
    assert_eq!(errors[0].kind, K::ValueTooLong(1 << 20));
    assert_eq!(errors[0].location.line, 21);
}

#[test]
fn include_fan_out_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        let body = format!("%include l{}.inc\n%include l{}.inc\n", i + 1, i + 1);
        std::fs::write(dir.path().join(format!("l{i}.inc")), body).unwrap();
    }
    std::fs::write(dir.path().join("l20.inc"), "k v\n").unwrap();
    let main = dir.path().join("main.conf");
    let errors = parse_str_with_env("%include l0.inc\n", &main, &NoEnv).unwrap_err();
    assert!(
        matches!(errors[0].kind, K::TooManyIncludes(1000)),
        "{:?}",
        errors[0]
    );
}
