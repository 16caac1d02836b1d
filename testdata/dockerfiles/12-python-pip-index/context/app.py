import ccdemo
print(ccdemo.GREETING)
