# check_svg.py CURVES.svg EPOCHS SERIES: the --plot file is well-formed SVG
# with the two panels (titles, axis labels, ticks), SERIES curves per panel
# each through EPOCHS points, and a legend entry per curve.
import sys
import xml.etree.ElementTree as ET

path, epochs, series = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(path).getroot()
assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
assert "Loss" in texts and "Accuracy" in texts, texts
assert texts.count("epoch") == 2 and "loss" in texts and "accuracy" in texts, texts
assert texts.count("training") == 2 and texts.count("validation") == (2 if series == 2 else 0)
curves = [p for g in root.findall("s:g", ns) for p in g.findall("s:polyline", ns)]
assert len(curves) == 2 * series, len(curves)
for c in curves:
    assert len(c.get("points").split()) == epochs, c.get("points")
ticks = [t for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") in ("xtick", "ytick")]
assert len(ticks) >= 8, len(ticks)
print("svg ok: %d curves of %d points, %d ticks" % (len(curves), epochs, len(ticks)))
