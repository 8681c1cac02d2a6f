use super::*;

fn check(constraint: &str, version: &str) -> bool {
    let c: SemverConstraint = constraint
        .parse()
        .unwrap_or_else(|e| panic!("{constraint}: {e}"));
    let v = parse_loose_version(version).unwrap_or_else(|| panic!("version {version}"));
    c.matches(&v)
}

#[test]
fn masterminds_cases_match() {
    let cases = [
        ("*", "1.2.3", true),
        ("*", "1.2.3-beta", false),
        ("1.x", "1.9.0", true),
        ("1.x", "2.0.0", false),
        ("1.2.x", "1.2.9", true),
        ("1.2.x", "1.3.0", false),
        ("1.2", "1.2.5", true),
        ("=1.2.3", "1.2.3", true),
        ("1.2.3", "1.2.4", false),
        ("v1.2.3", "1.2.3", true),
        ("!=1.2.3", "1.2.4", true),
        ("!=1.2.3", "1.2.3", false),
        ("!=1.x", "1.5.0", false),
        ("!=1.x", "2.0.0", true),
        (">1.2", "1.2.9", false),
        (">1.2", "1.3.0", true),
        (">11", "11.1.0", false),
        (">1.2.3", "1.2.4", true),
        ("<1.2.3", "1.2.2", true),
        ("<1.2.3", "1.2.3", false),
        ("<=1.2", "1.2.9", true),
        ("<=1.2", "1.3.0", false),
        (">=1.0.0 <2.0.0", "1.9.9", true),
        (">=1.0.0 <2.0.0", "2.0.0", false),
        (">= 1.0, < 2", "1.0.0", true),
        (">= 1.0, < 2", "2.0.0", false),
        ("~1.2", "1.2.7", true),
        ("~1.2", "1.3.0", false),
        ("~1.2.3", "1.2.2", false),
        ("~1", "1.9.0", true),
        ("~1", "2.0.0", false),
        ("~>1.2.3", "1.2.9", true),
        ("~0.0.0", "5.0.0", true),
        ("^1", "1.9.9", true),
        ("^1", "2.0.0", false),
        ("^1.2.3", "1.2.2", false),
        ("^0.2.3", "0.2.9", true),
        ("^0.2.3", "0.3.0", false),
        ("^0.0.3", "0.0.3", true),
        ("^0.0.3", "0.0.4", false),
        ("^0", "0.9.0", true),
        ("^0", "1.0.0", false),
        ("1.x || >=3.0.0", "2.0.0", false),
        ("1.x || >=3.0.0", "3.1.0", true),
        ("1.2 - 1.4.5", "1.4.5", true),
        ("1.2 - 1.4.5", "1.4.6", false),
        (">=1.0.0-0", "1.2.0-rc.1", true),
        (">=1.0.0-0 <2.0.0", "1.2.0-rc.1", true),
        (">=1.0.0", "1.2.0-rc.1", false),
        ("1.0.x-0", "1.0.5-rc.1", true),
        ("=1.2.3-beta", "1.2.3-beta", true),
        (">1.2.3-alpha", "1.2.3-beta", true),
    ];
    for (c, v, want) in cases {
        assert_eq!(check(c, v), want, "{c} vs {v}");
    }
}

#[test]
fn improper_constraints_are_rejected() {
    for bad in [
        "",
        "foo",
        ">=1.0.0 <",
        "1.2.3.4",
        "~~1",
        "a || b",
        ">= 1 &&< 2",
    ] {
        assert!(bad.parse::<SemverConstraint>().is_err(), "{bad}");
    }
}

#[test]
fn flux_versions_need_three_parts() {
    assert!(parse_flux_version("1.2").is_none());
    assert_eq!(
        parse_flux_version("v1.2.3").unwrap(),
        semver::Version::new(1, 2, 3)
    );
    assert!(parse_flux_version("6.0.3+1").is_some());
}

#[test]
fn build_metadata_with_dots_is_kept() {
    let v = parse_flux_version("6.6.0+build.7").expect("dotted build metadata parses");
    assert_eq!(v.build.as_str(), "build.7");
    assert_eq!(
        parse_flux_version("1.0.0-rc.1+b1").unwrap().build.as_str(),
        "b1"
    );
}

#[test]
fn latest_matching_follows_flux() {
    let tags = [
        "latest",
        "1.0.0",
        "v1.2.0",
        "1.3.0-rc.1",
        "1.2",
        "2.0.0",
        "1.2.1_5",
    ];
    let c: SemverConstraint = "1.x".parse().unwrap();
    assert_eq!(latest_matching(tags, &c, None, false), Some("v1.2.0"));
    assert_eq!(latest_matching(tags, &c, None, true), Some("1.2.1_5"));
    let pre: SemverConstraint = ">=1.0.0-0".parse().unwrap();
    let rc = Regex::new(".*-rc.*").unwrap();
    assert_eq!(
        latest_matching(tags, &pre, Some(&rc), false),
        Some("1.3.0-rc.1")
    );
    let none: SemverConstraint = ">=3".parse().unwrap();
    assert_eq!(latest_matching(tags, &none, None, false), None);
}

// Tag selection as `sourcectl list artifacts --filter-semver` uses it (moved from the registry
// crate, which now takes the filter as a closure).
fn pick(constraint: &str, tags: &[&str]) -> Vec<String> {
    let c: SemverConstraint = constraint.parse().unwrap();
    tags.iter()
        .filter(|t| parse_flux_version(t).is_some_and(|v| c.matches(&v)))
        .map(|t| (*t).to_owned())
        .collect()
}

const TAGS: &[&str] = &[
    "v1.0.0",
    "1.2.3",
    "v1.2.10",
    "1.3.0-rc.1",
    "2.0.0",
    "latest",
    "1.2",
    "v0.9.1",
];

#[test]
fn flux_tags_need_three_parts() {
    assert!(parse_flux_version("v1.2.3").is_some());
    assert!(parse_flux_version("1.2.3-rc.1+build").is_some());
    assert!(parse_flux_version("1.2").is_none());
    assert!(parse_flux_version("latest").is_none());
}

#[test]
fn masterminds_constraints_select_the_right_tags() {
    assert_eq!(pick(">=1.0.0 <2.0.0", TAGS), ["v1.0.0", "1.2.3", "v1.2.10"]);
    assert_eq!(
        pick(">= 1.0.0, < 2.0.0", TAGS),
        ["v1.0.0", "1.2.3", "v1.2.10"]
    );
    assert_eq!(pick("~1.2", TAGS), ["1.2.3", "v1.2.10"]);
    assert_eq!(pick("^1", TAGS), ["v1.0.0", "1.2.3", "v1.2.10"]);
    assert_eq!(pick("1.2.x", TAGS), ["1.2.3", "v1.2.10"]);
    assert_eq!(pick("1.2.3", TAGS), ["1.2.3"]);
    assert_eq!(pick("v2.0.0 || <1.0.0", TAGS), ["2.0.0", "v0.9.1"]);
    assert_eq!(
        pick("*", TAGS),
        ["v1.0.0", "1.2.3", "v1.2.10", "2.0.0", "v0.9.1"]
    );
    assert_eq!(pick("1.0.0 - 1.2.3", TAGS), ["v1.0.0", "1.2.3"]);
    assert_eq!(pick(">=1.3.0-0 <1.4.0", TAGS), ["1.3.0-rc.1"]);
    assert_eq!(pick("^1, != 1.2.3", TAGS), ["v1.0.0", "v1.2.10"]);
}

#[test]
fn bad_constraints_are_rejected() {
    assert!(">=abc".parse::<SemverConstraint>().is_err());
    assert!("".parse::<SemverConstraint>().is_err());
}
