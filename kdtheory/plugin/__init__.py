"""Plugin machinery: hook specifications, the plugin manager and name registries."""
