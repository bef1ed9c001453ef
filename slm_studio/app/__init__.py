"""The only package that imports Qt."""


def run_app() -> int:
    print("The desktop app is not built yet; use the subcommands (slm-studio --help).")
    return 0
