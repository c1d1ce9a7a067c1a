def main() -> None:
    raise SystemExit("fusion-assets: not wired yet")
