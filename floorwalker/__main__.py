from floorwalker.cli import app

app(prog_name="floorwalker")
