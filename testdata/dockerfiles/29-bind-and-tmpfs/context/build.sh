n=$(ls parts | wc -l); echo "built $n parts" > out.txt
