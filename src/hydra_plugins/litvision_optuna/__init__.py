"""litvision's Hydra plugins (Hydra loads plugins from the `hydra_plugins` namespace package only)."""
