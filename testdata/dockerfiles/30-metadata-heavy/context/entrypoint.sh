#!/bin/sh
echo "svc starting with $1 on $PORT in $(pwd)"
