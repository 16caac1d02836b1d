print("serving on 8000")
