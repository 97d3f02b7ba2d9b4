module example.com/myservice

go 1.22
