# no_temp_files.py DIR...: fails, naming them, if any of the directories holds
# a temporary file of an atomic write (NAME.tmp.XXXXXX) left behind.
import glob, os, sys

left = [f for d in sys.argv[1:] for f in glob.glob(os.path.join(d, "*.tmp.*"))]
if left:
    sys.exit("temporary files left behind: " + " ".join(sorted(left)))
print("no temporary files")
