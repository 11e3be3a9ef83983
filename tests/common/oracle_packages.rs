// The Python packages of the oracle venv (target/oracle-venv), shared by
// the tests and benches/parse.rs: one list, so neither rebuilds the other's venv.

/// The references, and what Plone and Zope sites add to them: Zope (its
/// schema, mkwsgiinstance, zconsole), the storage add-ons such sites
/// import, the buildout recipes that write their configs, mkzeoinstance;
/// prometheus-client's parser judges `zdctl metrics`.
pub const ORACLE_PACKAGES: &[&str] = &[
    "ZConfig==4.3",
    "zdaemon==5.2.1",
    "ZEO==6.2",
    "ZODB==6.4",
    "Zope==6.3",
    "tempstorage==6.0",
    "RelStorage==4.3.0",
    "zc.zlibstorage==1.2.0",
    "plone.recipe.zeoserver==4.0.1",
    "plone.recipe.zope2instance==9.1.0",
    "zc.buildout==6.0.1",
    "zc.recipe.egg==6.0.0",
    "zope.mkzeoinstance==6.0",
    "prometheus-client==0.26.0",
];
