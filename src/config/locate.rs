//! Where each key of a config file is written: the line of every key path, so a strict
//! check can name `file:line` for a key it refuses.

use std::collections::BTreeMap;

use toml::de::{DeTable, DeValue};

use super::env::{line_of, Substituted};
use super::schema::{child, index};

/// The line (1-based, in the file as written) of every key, by the path the schema walker
/// gives it (`exporter.poll_interval`, `clusters[1].consumer_properties."sasl.mechanism"`).
/// Empty when the text does not parse (the caller has reported that already).
pub(super) fn key_lines(original: &str, substituted: &Substituted) -> BTreeMap<String, usize> {
    let mut lines = BTreeMap::new();
    if let Ok(root) = DeTable::parse(&substituted.text) {
        let line = |pos: usize| line_of(original, substituted.original_offset(pos));
        walk_table(root.get_ref(), "", &line, &mut lines);
    }
    lines
}

fn walk_table(
    table: &DeTable<'_>,
    path: &str,
    line: &dyn Fn(usize) -> usize,
    out: &mut BTreeMap<String, usize>,
) {
    for (key, value) in table.iter() {
        let key_path = child(path, key.get_ref());
        out.insert(key_path.clone(), line(key.span().start));
        walk_value(value.get_ref(), &key_path, line, out);
    }
}

fn walk_value(
    value: &DeValue<'_>,
    path: &str,
    line: &dyn Fn(usize) -> usize,
    out: &mut BTreeMap<String, usize>,
) {
    match value {
        DeValue::Table(t) => walk_table(t, path, line, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let item_path = index(path, i);
                out.insert(item_path.clone(), line(item.span().start));
                walk_value(item.get_ref(), &item_path, line, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::substitute;

    fn lines(text: &str) -> BTreeMap<String, usize> {
        let env = |_: &str| Some("x".to_string());
        let s = substitute(text, &env).expect("substitutes");
        key_lines(text, &s)
    }

    #[test]
    fn every_key_has_the_line_it_is_written_on() {
        let text = "# c\n[exporter]\npoll_intervall = \"5s\"\n\n[[clusters]]\nname = \"${A}\"\n\
                    [clusters.consumer_properties]\n\"sasl.kerberos.kinit.cmd\" = \"k\"\n\n\
                    [[clusters]]\nname = \"b\"\nlabels = { env = \"prod\" }\n";
        let l = lines(text);
        assert_eq!(l["exporter.poll_intervall"], 3);
        assert_eq!(l["clusters[0].name"], 6);
        assert_eq!(
            l["clusters[0].consumer_properties.\"sasl.kerberos.kinit.cmd\""],
            8
        );
        assert_eq!(l["clusters[1].name"], 11);
        assert_eq!(l["clusters[1].labels.env"], 12);
    }

    #[test]
    fn unparsable_text_locates_nothing() {
        assert!(lines("[exporter\n").is_empty());
    }
}
