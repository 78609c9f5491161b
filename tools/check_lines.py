"""The `CHECK <name> ok|FAILED <detail>` lines the check scripts print (tools/obs_vendor_check.py,
tools/overlay_page_check.py), and whether every check passed."""


class Checks:
    def __init__(self):
        self.results = []

    def __call__(self, name, ok, detail=""):
        self.results.append(bool(ok))
        print(f"CHECK {name} {'ok' if ok else 'FAILED'} {detail}", flush=True)

    def all_passed(self):
        return all(self.results)
